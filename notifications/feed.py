"""
A user's notifications: which events they see over HTTP, and which of those are unread.

The feed is the user's inbox (events addressed to them, to one of their groups, to everyone, or
to staff when they are staff) plus the admin.* and model.* events about models they may follow
(authorization.followable_models), less the object events they made themselves: nobody needs
to be told about their own edit. Events from before the user joined are not theirs.

The two halves of the feed are an OR across tables, which databases answer by collecting every
matching id before sorting: for a user who sees 50,000 events, "the newest 20" would mean
sorting 50,000. So a page is searched in a window of recent ids, widened only when it holds too
few (page()), and unread events are bounded by the user's read marker as a plain value (an id
range the indexes can use) rather than a subquery. bench/api_feed.py measures both.
"""

from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from .authorization import followable_models
from .models import OBJECT_KINDS, Audience, Event, ReadMarker, Receipt, Recipient


def _addressed_to(user):
    audiences = [Audience.ALL] + ([Audience.STAFF] if getattr(user, "is_staff", False) else [])
    addressed = Q(user=user) | Q(audience__in=audiences)
    if hasattr(user, "groups"):
        memberships = user.groups.through.objects.filter(**{user.groups.source_field_name: user})
        addressed |= Q(group__in=memberships.values("group_id"))
    return Recipient.objects.filter(addressed).values("event_id")


def events_for(user):
    """Every event in `user`'s feed."""
    followed = Q(kind__in=OBJECT_KINDS, target_type__in=followable_models(user)) & ~Q(actor=user)
    events = Event.objects.filter(Q(pk__in=_addressed_to(user)) | followed)
    date_joined = getattr(user, "date_joined", None)
    return events.filter(created_at__gte=date_joined) if date_joined else events


FIRST_WINDOW = 1_000
WINDOW_GROWTH = 8


def _read_through(user):
    marker = ReadMarker.objects.filter(user=user).values("read_through")[:1]
    return Coalesce(Subquery(marker), Value(0), output_field=BigIntegerField())


def read_through(user):
    return ReadMarker.objects.filter(user=user).values_list("read_through", flat=True).first() or 0


def _receipt(user):
    return Exists(Receipt.objects.filter(user=user, event=OuterRef("pk")))


def read_condition(user):
    """An event is read by `user`: at or under their marker, or with a receipt (one condition, no extra query)."""
    return Q(pk__lte=_read_through(user)) | Q(_receipt(user))


def with_read_flag(events, user):
    """Annotate `read` on each event, in the same query."""
    return events.annotate(read=Case(When(read_condition(user), then=Value(True)), default=Value(False)))


def page(user, limit, before=None):
    """
    (events, unread count): up to `limit` + 1 events of the feed, newest first, older than
    `before`, with their `read` flag and actor, and the unread count read in the same statement,
    so an event committing meanwhile is either listed and counted or neither. One query when the
    newest 1,000 ids hold enough of the user's events, one more for each widening (x8) of the
    window when they do not.
    """
    newest = before - 1 if before is not None else Event.objects.aggregate(newest=Max("pk"))["newest"] or 0
    unread_total = unread(user).order_by().annotate(one=Value(1)).values("one").annotate(n=Count("pk")).values("n")
    events = (
        with_read_flag(events_for(user), user)
        .annotate(unread_total=Coalesce(Subquery(unread_total), Value(0)))
        .filter(pk__lte=newest)
        .select_related("actor")
        .order_by("-pk")
    )
    window = FIRST_WINDOW
    while True:
        oldest = newest - window
        rows = list((events.filter(pk__gt=oldest) if oldest > 0 else events)[: limit + 1])
        if len(rows) > limit or oldest <= 0:
            return rows, rows[0].unread_total if rows else unread_count(user)
        window *= WINDOW_GROWTH


def unread(user):
    return events_for(user).filter(pk__gt=read_through(user)).exclude(_receipt(user))


def unread_count(user):
    return unread(user).count()


def unread_state(user):
    """
    (unread count, latest): the count, and the id up to which it accounts for every event of the
    feed (None when the feed is empty and nothing was ever marked). Both come from one
    statement, so an event committed in between is in neither: an event with a higher id was
    not counted, one with a lower id was (or is read). Unread events lie above the read marker,
    so only that range is looked at.
    """
    marker = read_through(user)
    above = events_for(user).filter(pk__gt=marker).aggregate(latest=Max("pk"), unread=Count("pk", filter=~Q(_receipt(user))))
    return above["unread"], above["latest"] or marker or None


def mark_read(user, event_ids):
    """Receipts for these events (ids of the user's feed), those already there kept."""
    Receipt.objects.bulk_create([Receipt(user=user, event_id=pk) for pk in event_ids], ignore_conflicts=True)


def mark_all_read(user):
    """
    Move the user's marker to the newest event, and return its id; the receipts it now covers
    are dropped. (An event that commits later with a lower id, possible on PostgreSQL, counts as
    read.)
    """
    newest = Event.objects.aggregate(newest=Max("pk"))["newest"] or 0
    ReadMarker.objects.update_or_create(user=user, defaults={"read_through": newest})
    Receipt.objects.filter(user=user, event_id__lte=newest).delete()
    return newest
