"""
Creating events and scheduling their publication.

Every path that makes an event (the admin's log, tracked models, notify(), announce()) goes
through here, so each is stored the same way and published once its transaction commits.
Query counts stay constant whatever the audience: object events have no recipient rows, and
an inbox event adds at most one statement for its users (INSERT ... SELECT), one for its
groups and one for an audience.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections, router
from django.db.models import F, QuerySet

from .models import OBJECT_KINDS, Event, Recipient
from .publishing import encode_message, publish_on_commit
from .topics import audience_route, group_route, model_topic, object_topic, user_route


def create_object_events(events):
    """Store unsaved object events (admin activity, tracked models) and publish them on commit."""
    if not events:
        return []
    if any(event.kind not in OBJECT_KINDS or not event.target_type for event in events):
        raise ValueError("Object events need an admin.* or model.* kind and a target.")
    database = router.db_for_write(Event)
    events = Event.objects.using(database).bulk_create(events)
    publish_on_commit([encode_message(event, _object_routes(event)) for event in events], using=database)
    return events


def _object_routes(event):
    routes = [model_topic(event.target_type)]
    if event.target_id:
        routes.append(object_topic(event.target_type, event.target_id))
    return routes


def create_inbox_event(event, users=None, group_ids=(), audience=""):
    """
    Store an unsaved inbox event addressed to `users` (a queryset), groups (pks) and/or an
    audience ("all" or "staff"), and publish it on commit.
    """
    database = router.db_for_write(Event)
    event.save(using=database)
    routes = [group_route(pk) for pk in set(group_ids)]
    if users is not None:
        users = users.using(database).order_by().distinct()
        routes += [user_route(pk) for pk in users.values_list("pk", flat=True)]
        _insert_user_recipients(event, users, database)
    rows = [Recipient(event=event, group_id=pk) for pk in set(group_ids)]
    if audience:
        rows.append(Recipient(event=event, audience=audience))
        routes.append(audience_route(audience))
    Recipient.objects.using(database).bulk_create(rows)
    publish_on_commit([encode_message(event, routes)], using=database)
    return event


def _insert_user_recipients(event, users, database):
    """One INSERT ... SELECT for any number of users (bulk_create would batch by 999 params)."""
    select_sql, params = users.values(recipient_id=F("pk")).query.sql_with_params()
    connection = connections[database]
    quote = connection.ops.quote_name
    recipient = Recipient._meta
    columns = ", ".join(quote(recipient.get_field(name).column) for name in ("event", "user", "audience"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(recipient.db_table)} ({columns}) "
            f"SELECT %s, chosen.recipient_id, %s FROM ({select_sql}) chosen",
            (event.pk, "", *params),
        )


def split_recipients(recipients):
    """
    (users_queryset or None, group_ids) from what notify() accepts: a user, a group, a
    queryset of either, or an iterable mixing users and groups.
    """
    user_model = get_user_model()
    if isinstance(recipients, QuerySet):
        if issubclass(recipients.model, user_model):
            return recipients, set()
        if issubclass(recipients.model, Group):
            return None, set(recipients.values_list("pk", flat=True))
        raise TypeError(f"notify() takes users or groups, not a queryset of {recipients.model.__name__}.")
    if isinstance(recipients, (user_model, Group)):
        recipients = [recipients]
    user_ids, group_ids = set(), set()
    for recipient in recipients:
        if isinstance(recipient, user_model) and recipient.pk is not None:
            user_ids.add(recipient.pk)
        elif isinstance(recipient, Group) and recipient.pk is not None:
            group_ids.add(recipient.pk)
        else:
            raise TypeError(f"notify() takes saved users or groups, not {recipient!r}.")
    users = user_model._default_manager.filter(pk__in=user_ids) if user_ids else None
    return users, group_ids
