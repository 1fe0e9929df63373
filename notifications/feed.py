"""
A user's notifications: which events they see over HTTP, and which of those are unread.

The feed is the user's inbox (events addressed to them, to one of their groups, to everyone, or
to staff when they are staff) plus the admin.* and model.* events about models they may follow
(authorization.followable_models), less the object events they made themselves: nobody needs
to be told about their own edit. Events from before the user joined are not theirs.

Everything here is a lazy queryset, so the HTTP views run one query for a page of the list and
one for the unread count, however many events there are; both use the indexes on Recipient's
user, group and audience, Event's kind and target, and Receipt's (user, event).
"""

from django.db.models import BigIntegerField, Case, Exists, Max, OuterRef, Q, Subquery, Value, When
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


def _read_through(user):
    marker = ReadMarker.objects.filter(user=user).values("read_through")[:1]
    return Coalesce(Subquery(marker), Value(0), output_field=BigIntegerField())


def _receipt(user):
    return Exists(Receipt.objects.filter(user=user, event=OuterRef("pk")))


def with_read_flag(events, user):
    """Annotate `read` on each event, in the same query."""
    read = Q(pk__lte=_read_through(user)) | Q(_receipt(user))
    return events.annotate(read=Case(When(read, then=Value(True)), default=Value(False)))


def unread(user):
    return events_for(user).filter(pk__gt=_read_through(user)).exclude(_receipt(user))


def unread_count(user):
    return unread(user).count()


def mark_read(user, event):
    Receipt.objects.get_or_create(user=user, event=event)


def mark_all_read(user):
    """
    Move the user's marker to the newest event; the receipts it now covers are dropped.
    (An event that commits later with a lower id, possible on PostgreSQL, counts as read.)
    """
    newest = Event.objects.aggregate(newest=Max("pk"))["newest"] or 0
    ReadMarker.objects.update_or_create(user=user, defaults={"read_through": newest})
    Receipt.objects.filter(user=user, event_id__lte=newest).delete()
