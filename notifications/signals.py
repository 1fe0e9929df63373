"""
Events from the Django admin's log and from tracked models.

The admin records every add, change and delete as a LogEntry; each new entry becomes an
`admin.*` event about the logged object. Most entries are saved one by one (post_save), but
"delete selected" logs several objects with one bulk_create, which sends no signal, so
`LogEntryManager.log_actions` is wrapped to publish those too (install_admin_log_hook).

Models listed in NOTIFICATIONS_TRACK_MODELS publish `model.*` events on every save and
delete, whatever code path makes them.
"""

import functools

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry, LogEntryManager
from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.urls import NoReverseMatch, reverse

from .conf import app_settings
from .events import create_object_events
from .models import Event, Kind

ADMIN_KINDS = {ADDITION: Kind.ADMIN_ADDITION, CHANGE: Kind.ADMIN_CHANGE, DELETION: Kind.ADMIN_DELETION}
ADMIN_VERBS = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}
PUBLISHED_FLAG = "_notifications_published"


def admin_url(app_label, model_name, pk=None):
    """The object's admin change page (or the changelist), or "" if the admin has none."""
    try:
        if pk is None:
            return reverse(f"admin:{app_label}_{model_name}_changelist")
        return reverse(f"admin:{app_label}_{model_name}_change", args=[quote(pk)])
    except NoReverseMatch:
        return ""


def admin_event(entry, actor):
    content_type = ContentType.objects.get_for_id(entry.content_type_id)
    model = content_type.model_class()
    verbose_name = model._meta.verbose_name if model else content_type.model
    deleted = entry.action_flag == DELETION
    return Event(
        kind=ADMIN_KINDS[entry.action_flag],
        title=f"{actor.get_username()} {ADMIN_VERBS[entry.action_flag]} {verbose_name} “{entry.object_repr}”",
        body="" if entry.action_flag == ADDITION else entry.get_change_message(),
        url=admin_url(content_type.app_label, content_type.model, None if deleted else entry.object_id),
        actor=actor,
        target_type=f"{content_type.app_label}.{content_type.model}",
        target_id=str(entry.object_id or ""),
        target_repr=entry.object_repr,
        created_at=entry.action_time,
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="notifications.log_entry_saved")
def log_entry_saved(sender, instance, created, raw, **kwargs):
    if created and not raw and instance.action_flag in ADMIN_KINDS:
        setattr(instance, PUBLISHED_FLAG, True)
        create_object_events([admin_event(instance, instance.user)])


def install_admin_log_hook():
    """Publish the entries LogEntryManager.log_actions bulk-creates (they send no post_save)."""
    original = LogEntryManager.log_actions
    if getattr(original, "publishes_events", False):
        return

    @functools.wraps(original)
    def log_actions(self, user_id, queryset, action_flag, *args, **kwargs):
        result = original(self, user_id, queryset, action_flag, *args, **kwargs)
        entries = result if isinstance(result, list) else [result]
        unpublished = [e for e in entries if not getattr(e, PUBLISHED_FLAG, False) and e.action_flag in ADMIN_KINDS]
        if unpublished:
            actor = unpublished[0].user
            create_object_events([admin_event(entry, actor) for entry in unpublished])
        return result

    log_actions.publishes_events = True
    LogEntryManager.log_actions = log_actions


@functools.cache
def tracked_models():
    return frozenset(label.lower() for label in app_settings.NOTIFICATIONS_TRACK_MODELS)


@receiver(setting_changed, dispatch_uid="notifications.tracked_models_changed")
def tracked_models_changed(setting, **kwargs):
    if setting == "NOTIFICATIONS_TRACK_MODELS":
        tracked_models.cache_clear()


def model_event(instance, kind):
    opts = instance._meta
    verb = {Kind.MODEL_CREATED: "created", Kind.MODEL_UPDATED: "updated", Kind.MODEL_DELETED: "deleted"}[kind]
    deleted = kind == Kind.MODEL_DELETED
    return Event(
        kind=kind,
        title=f"{opts.verbose_name.capitalize()} “{instance}” was {verb}",
        url=admin_url(opts.app_label, opts.model_name, None if deleted else instance.pk),
        target_type=opts.label_lower,
        target_id=str(instance.pk),
        target_repr=str(instance)[:200],
    )


@receiver(post_save, dispatch_uid="notifications.tracked_model_saved")
def tracked_model_saved(sender, instance, created, raw, **kwargs):
    if not raw and sender._meta.label_lower in tracked_models():
        create_object_events([model_event(instance, Kind.MODEL_CREATED if created else Kind.MODEL_UPDATED)])


@receiver(post_delete, dispatch_uid="notifications.tracked_model_deleted")
def tracked_model_deleted(sender, instance, **kwargs):
    if sender._meta.label_lower in tracked_models():
        create_object_events([model_event(instance, Kind.MODEL_DELETED)])
