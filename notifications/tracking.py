"""
Events from tracked models: NOTIFICATIONS_TRACK_MODELS publish `model.*` events on every save
and delete, whatever code path makes them.

Receivers are connected per tracked model, never for all senders: a post_delete receiver for
every model would make Django's deletion collector load each row it deletes (it can only
"fast delete" models nobody listens to). Saves through a proxy of a tracked model count as saves
of that model. Historical models (data migrations) and raw fixture loading publish nothing.
"""

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save

from .conf import app_settings
from .events import admin_url, create_object_events
from .models import Event, Kind

VERBS = {Kind.MODEL_CREATED: "created", Kind.MODEL_UPDATED: "updated", Kind.MODEL_DELETED: "deleted"}
_connected = []


def model_event(instance, kind):
    opts = instance._meta
    deleted = kind == Kind.MODEL_DELETED
    return Event(
        kind=kind,
        title=f"{opts.verbose_name.capitalize()} “{instance}” was {VERBS[kind]}",
        url=admin_url(opts.app_label, opts.model_name, None if deleted else instance.pk),
        target_type=opts.label_lower,
        target_id=str(instance.pk),
        target_repr=str(instance),
    )


def model_saved(sender, instance, created, raw, using, **kwargs):
    if not raw and sender._meta.apps is apps:
        create_object_events([model_event(instance, Kind.MODEL_CREATED if created else Kind.MODEL_UPDATED)], source_db=using)


def model_deleted(sender, instance, using, **kwargs):
    if sender._meta.apps is apps:
        create_object_events([model_event(instance, Kind.MODEL_DELETED)], source_db=using)


def tracked_models():
    """The tracked models and their proxies; ImproperlyConfigured for a label that names none."""
    models = set()
    for label in app_settings.NOTIFICATIONS_TRACK_MODELS:
        try:
            models.add(apps.get_model(label))
        except (LookupError, ValueError):
            raise ImproperlyConfigured(
                f"NOTIFICATIONS_TRACK_MODELS: {label!r} is not an installed model ('app_label.ModelName')."
            ) from None
    return models | {m for m in apps.get_models() if m._meta.proxy and m._meta.concrete_model in models}


def connect():
    disconnect()
    for model in tracked_models():
        post_save.connect(model_saved, sender=model, dispatch_uid=f"notifications.saved.{model._meta.label_lower}")
        post_delete.connect(model_deleted, sender=model, dispatch_uid=f"notifications.deleted.{model._meta.label_lower}")
        _connected.append(model)


def disconnect():
    while _connected:
        model = _connected.pop()
        post_save.disconnect(sender=model, dispatch_uid=f"notifications.saved.{model._meta.label_lower}")
        post_delete.disconnect(sender=model, dispatch_uid=f"notifications.deleted.{model._meta.label_lower}")


def tracked_models_changed(setting, **kwargs):
    if setting == "NOTIFICATIONS_TRACK_MODELS":
        connect()


setting_changed.connect(tracked_models_changed, dispatch_uid="notifications.tracked_models_changed")
