"""
Bursts: an actor's events of one kind about one model within NOTIFICATIONS_GROUP_WINDOW seconds
are one group ("bob changed 50 orders"), decided once, when the events are stored.

A burst is named after its first event: each later event stores that id in `Event.burst` (the
first event's own is null), so an event's group is `burst or id`, and reading a grouped page is a
GROUP BY on a stored value, never a search through neighbouring events. An event joins the newest
burst of its actor, kind and model whose first event is at most the window older than it; the
events of one call (the admin's "delete selected" logs 200 objects at once) join one burst,
found or started with the same few statements however many there are.

Concurrent transactions: a burst is found only once its first event has committed. Two requests
storing events of the same actor, kind and model at the same moment each start a burst of their
own, or the later one joins the earlier's; either way every burst holds one actor, one kind and
one model, because those are what it is looked up by. Only object events (admin.*, model.*) are
grouped; inbox notifications are each their own group.
"""

from datetime import timedelta

from django.db.models import BigIntegerField, Max, Q
from django.db.models.functions import Coalesce

from .conf import app_settings
from .models import Event


def group_key():
    """The group of an event, as a query expression: its burst, or itself."""
    return Coalesce("burst", "pk", output_field=BigIntegerField())


def members(group_id):
    """The events of a group: those naming it as their burst, and its first event."""
    return Q(burst=group_id) | Q(pk=group_id, burst__isnull=True)


def group_of(event):
    return event.burst or event.pk


def window():
    """The window as a timedelta, or None when grouping is off."""
    seconds = app_settings.NOTIFICATIONS_GROUP_WINDOW
    return timedelta(seconds=seconds) if seconds else None


def _identity(event):
    return event.actor_id, event.kind, event.target_type


def store(events, database):
    """
    bulk_create these unsaved object events, each in its burst; the stored events in id order.
    Three statements at most (open bursts, the first events of new bursts, the others) for one
    actor, kind and model or for many.
    """
    span = window()
    if span is None:
        return Event.objects.using(database).bulk_create(events)
    calls = {}
    for event in events:
        calls.setdefault(_identity(event), []).append(event)
    found = _open_bursts(calls, span, database)
    starting = [batch[0] for identity, batch in calls.items() if identity not in found]
    stored = Event.objects.using(database).bulk_create(starting) if starting else []
    for event in stored:
        found[_identity(event)] = event.pk
    joining = [event for batch in calls.values() for event in batch if event.pk is None]
    for event in joining:
        event.burst = found[_identity(event)]
    stored += Event.objects.using(database).bulk_create(joining) if joining else []
    return sorted(stored, key=lambda event: event.pk)


def _open_bursts(calls, span, database):
    """{(actor id, kind, model): first event id} of the newest committed burst each may join."""
    wanted = Q(pk__in=[])
    for (actor_id, kind, target_type), batch in calls.items():
        since = min(event.created_at for event in batch) - span
        wanted |= Q(actor_id=actor_id, kind=kind, target_type=target_type, created_at__gte=since)
    heads = (
        Event.objects.using(database)
        .filter(wanted, burst__isnull=True)
        .values("actor_id", "kind", "target_type")
        .annotate(head=Max("pk"))
        .order_by()
    )
    return {(row["actor_id"], row["kind"], row["target_type"]): row["head"] for row in heads}
