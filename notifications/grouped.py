"""
The grouped feed: a user's notifications with each burst (bursts.py) as one item.

An item is a group: the events of the user's feed sharing one `burst or id`. Items are ordered
newest first by their group id (the id of the burst's first event), and a page's `before` is a
group id, so a group is never split across pages nor listed twice, however its members
interleave with other events: every event belongs to exactly one group id. A burst lasts at most
NOTIFICATIONS_GROUP_WINDOW, so that order is the order in which bursts began.

A page is one aggregate statement (counts, unread counts, first and last times, newest member of
each group, and the user's unread total in the same statement, as feed.page() does), searched
in a window of recent ids widened only when it holds too few groups, then one statement for the
newest member of each group listed. Members are counted among the events the user sees
(feed.events_for), so counts and unread counts are the user's own.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Q, Subquery, Value
from django.db.models.functions import Coalesce

from . import bursts, feed, readstate
from .models import Event


@dataclass
class Group:
    id: int
    count: int
    unread_count: int
    first_at: datetime
    last_at: datetime
    latest: Event  # its newest member the user sees, with `read` and its actor


def _sums(user):
    """What a group's row sums up of its members the user sees, as aggregates of one statement."""
    return {
        "count": Count("pk"),
        "unread_count": Count("pk", filter=~feed.read_condition(user)),
        "latest": Max("pk"),
        "first_at": Min("created_at"),
        "last_at": Max("created_at"),
    }


def _group(group_id, sums, latest):
    return Group(group_id, sums["count"], sums["unread_count"], sums["first_at"], sums["last_at"], latest)


def _newest_members(user, ids):
    """The events of these ids, with `read` and actor, by id: one statement."""
    return {event.pk: event for event in feed.with_read_flag(Event.objects.filter(pk__in=ids), user).select_related("actor")}


def page(user, limit, before=None):
    """
    (groups, unread count): up to `limit` + 1 groups of the user's feed with ids below `before`,
    newest first, and the user's unread count read in the same statement.
    """
    newest = before - 1 if before is not None else Event.objects.aggregate(newest=Max("pk"))["newest"] or 0
    unread_total = feed.unread(user).order_by().annotate(one=Value(1)).values("one").annotate(n=Count("pk")).values("n")
    window = feed.FIRST_WINDOW
    while True:
        oldest = max(newest - window, 0)
        # The groups with ids in (oldest, newest], with all their members: an event is one by its
        # id (a first event, or not in a burst) or by its burst's. Found as a set of ids first, so
        # that the database reads that range (the primary key, the burst index) rather than every
        # event of the feed's models.
        in_range = Event.objects.filter(Q(pk__gt=oldest, pk__lte=newest) | Q(burst__gt=oldest, burst__lte=newest))
        rows = list(
            feed.events_for(user)
            .filter(pk__in=in_range.values("pk"))
            .annotate(group=bursts.group_key())
            .filter(group__gt=oldest, group__lte=newest)
            .values("group")
            .annotate(**_sums(user), unread_total=Coalesce(Subquery(unread_total), Value(0)))
            .order_by("-group")[: limit + 1]
        )
        if len(rows) > limit or oldest <= 0:
            break
        window *= feed.WINDOW_GROWTH
    if not rows:
        return [], feed.unread_count(user)
    by_id = _newest_members(user, [row["latest"] for row in rows])
    groups = [
        _group(row["group"], row, by_id[row["latest"]])
        for row in rows
        if row["latest"] in by_id  # deleted in between: left out rather than shown without its event
    ]
    return groups, rows[0]["unread_total"]


def summary(user, group_id):
    """The group as the user sees it (a Group), or None when they see none of its events: two statements."""
    sums = feed.events_for(user).filter(bursts.members(group_id)).aggregate(**_sums(user))
    latest = _newest_members(user, [sums["latest"]]).get(sums["latest"]) if sums["count"] else None
    return None if latest is None else _group(group_id, sums, latest)


def members(user, group_id, limit, before=None):
    """Up to `limit` + 1 members of a group that the user sees, newest first, below `before`, with `read` and actor."""
    events = feed.with_read_flag(feed.events_for(user).filter(bursts.members(group_id)), user).select_related("actor")
    if before is not None:
        events = events.filter(pk__lt=before)
    return list(events.order_by("-pk")[: limit + 1])


def mark_read(user, group_id):
    """
    Mark the group's unread members read (readstate.mark_read: one `read` frame to the user's
    sockets); the ids marked, or None when the user sees no event of that group.
    """
    events = feed.events_for(user).filter(bursts.members(group_id))
    unread_ids = list(events.filter(~feed.read_condition(user)).values_list("pk", flat=True))
    if unread_ids:
        return readstate.mark_read(user, unread_ids)
    return [] if events.exists() else None
