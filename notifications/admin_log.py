"""
Events from the Django admin's log.

The admin records every add, change and delete as a LogEntry; each new entry becomes an
`admin.*` event about the logged object. Most entries are saved one by one (post_save), but
"delete selected" logs several objects with one bulk_create, which sends no signal, so
`LogEntryManager.log_actions` is wrapped to publish those too. (Django logs those deletions just
before deleting, outside a transaction, so their events go out just before the rows disappear.)
When the object is of a tracked model, the admin's event is the only one for the action
(tracking.py).

Connected by NotificationsConfig.ready() when django.contrib.admin is installed.
"""

import functools

from django.contrib.admin.models import (
    ADDITION,
    CHANGE,
    DELETION,
    LogEntry,
    LogEntryManager,
)
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import post_save

from . import rendering, tracking
from .events import admin_url, create_object_events
from .models import Event, Kind

ADMIN_KINDS = {ADDITION: Kind.ADMIN_ADDITION, CHANGE: Kind.ADMIN_CHANGE, DELETION: Kind.ADMIN_DELETION}
PUBLISHED_FLAG = "_notifications_published"


def admin_event(entry, actor):
    """The event of a log entry: what happened (rendering.py writes it in each reader's language)."""
    content_type = ContentType.objects.db_manager(entry._state.db).get_for_id(entry.content_type_id)
    deleted = entry.action_flag == DELETION
    kind, target_type = ADMIN_KINDS[entry.action_flag], f"{content_type.app_label}.{content_type.model}"
    params = {"actor": actor.get_username(), "change_message": entry.change_message or ""}
    title, body = rendering.in_site_language(kind, params["actor"], target_type, entry.object_repr, params)
    return Event(
        kind=kind,
        title=title,
        body=body,
        params=params,
        url=admin_url(content_type.app_label, content_type.model, None if deleted else entry.object_id),
        actor=actor,
        target_type=target_type,
        target_id=str(entry.object_id or ""),
        target_repr=entry.object_repr,
        created_at=entry.action_time,
    )


def publish_admin_events(entries, actor, using):
    """
    Store and publish the events of these log entries. Each stands for its action: a tracked
    model's own event for the same object goes (tracking.py), one action making one event.
    """
    events = [admin_event(entry, actor) for entry in entries]
    for entry, event in zip(entries, events):
        if entry.action_flag == DELETION:
            tracking.deletion_logged(event.target_type, event.target_id)
        else:
            tracking.superseded(event.target_type, event.target_id)
    create_object_events(events, source_db=using)


def log_entry_saved(sender, instance, created, raw, using, **kwargs):
    if created and not raw and instance.action_flag in ADMIN_KINDS:
        setattr(instance, PUBLISHED_FLAG, True)
        publish_admin_events([instance], instance.user, using)


def wrap_log_actions(original):
    """log_actions that also publishes the entries it bulk-creates (they send no post_save)."""

    @functools.wraps(original)
    def log_actions(self, user_id, queryset, action_flag, *args, **kwargs):
        result = original(self, user_id, queryset, action_flag, *args, **kwargs)
        entries = result if isinstance(result, list) else [result]
        unpublished = [
            entry
            for entry in entries
            if isinstance(entry, LogEntry) and entry.action_flag in ADMIN_KINDS and not getattr(entry, PUBLISHED_FLAG, False)
        ]
        if unpublished:
            publish_admin_events(unpublished, unpublished[0].user, self.db)
        return result

    log_actions.publishes_events = True
    return log_actions


def connect():
    post_save.connect(log_entry_saved, sender=LogEntry, dispatch_uid="notifications.log_entry_saved")
    if not getattr(LogEntryManager.log_actions, "publishes_events", False):
        LogEntryManager.log_actions = wrap_log_actions(LogEntryManager.log_actions)
