"""
Events from tracked models: NOTIFICATIONS_TRACK_MODELS publish `model.*` events on every save
and delete, whatever code path makes them.

Receivers are connected per tracked model, never for all senders: a post_delete receiver for
every model would make Django's deletion collector load each row it deletes (it can only
"fast delete" models nobody listens to). Saves through a proxy of a tracked model count as saves
of that model. Historical models (data migrations) and raw fixture loading publish nothing.

One action, one event: when the admin changes a tracked object it also logs the change, and its
`admin.*` event (which carries the change message) is the one that counts. The admin saves
first and logs after, within one transaction: the model event stored by the save is withdrawn
when the log entry comes (admin_log.py calls `superseded`). It deletes first and logs before:
the log entry announces the deletion (`deletion_logged`), and the model event is not made.
Both are remembered per thread (the latest REMEMBERED: the admin logs right after it saves, and
announces as many deletions as it then makes), and forgotten at the start and end of each
request.
"""

import threading
from collections import OrderedDict

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_finished, request_started, setting_changed
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from . import rendering
from .conf import app_settings
from .events import admin_url, create_object_events, withdraw
from .models import Event, Kind

REMEMBERED = {"saved": 1_000, "deleting": 100_000}
_connected = []
_recent = threading.local()  # .saved: (label, pk) → model event; .deleting: (label, pk) → None


def _remembered(name):
    found = getattr(_recent, name, None)
    if found is None:
        found = OrderedDict()
        setattr(_recent, name, found)
    return found


def _remember(name, key, value=None):
    memory = _remembered(name)
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > REMEMBERED[name]:
        memory.popitem(last=False)


def forget(**kwargs):
    """At the start and end of each request: what the admin did in another request does not count."""
    for name in ("saved", "deleting"):
        _remembered(name).clear()


def superseded(label, pk):
    """The admin logs an addition or change of this object: withdraw the model event its save made."""
    event = _remembered("saved").pop((label, pk), None)
    if event is not None:
        withdraw(event)


def deletion_logged(label, pk):
    """The admin logs that it is about to delete this object: its deletion makes no model event."""
    _remember("deleting", (label, pk))


def model_event(instance, kind):
    opts = instance._meta
    deleted = kind == Kind.MODEL_DELETED
    target_repr = str(instance)
    title, _body = rendering.in_site_language(kind, None, opts.label_lower, target_repr, {})
    return Event(
        kind=kind,
        title=title,
        params={},
        url=admin_url(opts.app_label, opts.model_name, None if deleted else instance.pk),
        target_type=opts.label_lower,
        target_id=str(instance.pk),
        target_repr=target_repr,
    )


def model_saved(sender, instance, created, raw, using, **kwargs):
    if not raw and sender._meta.apps is apps:
        event = model_event(instance, Kind.MODEL_CREATED if created else Kind.MODEL_UPDATED)
        for stored in create_object_events([event], source_db=using):
            if transaction.get_connection(stored._state.db).in_atomic_block:  # else published already
                _remember("saved", (stored.target_type, stored.target_id), stored)


def model_deleted(sender, instance, using, **kwargs):
    if sender._meta.apps is apps:
        deleting, key = _remembered("deleting"), (instance._meta.label_lower, str(instance.pk))
        if key in deleting:
            del deleting[key]
            return  # the admin's admin.deletion event announces it
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
request_started.connect(forget, dispatch_uid="notifications.tracking.forget_started")
request_finished.connect(forget, dispatch_uid="notifications.tracking.forget_finished")
