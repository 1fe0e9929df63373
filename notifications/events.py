"""
Creating events and scheduling their publication.

Every path that makes an event (the admin's log, tracked models, notify(), announce()) goes
through here, so each is stored the same way and published once its transaction commits.
Query counts stay constant whatever the audience: object events have no recipient rows, and
an inbox event adds at most one statement for its users (INSERT ... SELECT), one for its
groups and one for an audience.
"""

from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router, transaction
from django.db.models import F, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils.text import Truncator

from . import bursts
from .models import OBJECT_KINDS, Event, Recipient
from .outbox import publish_on_commit, withdraw_publication
from .publishing import object_event_routes
from .topics import addressee_routes


def admin_url(app_label, model_name, pk=None):
    """The object's admin change page (or the model's changelist), or "" if the admin has none."""
    try:
        if pk is None:
            return reverse(f"admin:{app_label}_{model_name}_changelist")
        return reverse(f"admin:{app_label}_{model_name}_change", args=[quote(pk)])
    except NoReverseMatch:
        return ""


def _fit_to_columns(event):
    """Shorten text that would not fit its column (PostgreSQL refuses it, failing the host's write)."""
    for field in Event._meta.concrete_fields:
        if isinstance(field, models.CharField) and field.max_length:
            value = getattr(event, field.attname)
            if isinstance(value, str) and len(value) > field.max_length:
                setattr(event, field.attname, Truncator(value).chars(field.max_length))
    return event


def create_object_events(events, source_db=None):
    """
    Store unsaved object events (admin activity, tracked models), each in its burst (bursts.py),
    and publish them on commit; the stored events ([] while they wait for `source_db` to commit, see below).

    `source_db` is the database the change they describe was written to. When events live in
    another database, they are stored only once that change commits, so a rolled-back change
    leaves neither rows nor messages.
    """
    if any(event.kind not in OBJECT_KINDS or not event.target_type for event in events):
        raise ValueError("Object events need an admin.* or model.* kind and a target.")
    database = router.db_for_write(Event)
    if source_db and source_db != database and transaction.get_connection(source_db).in_atomic_block:
        transaction.on_commit(lambda: _store_object_events(events, database), using=source_db)
        return []
    return _store_object_events(events, database)


def _store_object_events(events, database):
    if not events:
        return []
    events = bursts.store([_fit_to_columns(event) for event in events], database)
    publish_on_commit([(event, object_event_routes(event)) for event in events], using=database)
    return events


def withdraw(event):
    """
    Take back an event stored in the current transaction, before it commits (the admin's own
    event replaces a tracked model's, see tracking.py): no row, no publication. False when it
    is too late, its publication having begun.
    """
    if not withdraw_publication(event):
        return False
    Event.objects.using(event._state.db).filter(pk=event.pk).delete()
    return True


def create_inbox_event(event, users=None, group_ids=(), audience=""):
    """
    Store an unsaved inbox event addressed to `users` (a queryset), groups (pks) and/or an
    audience ("all" or "staff"), and publish it on commit.
    """
    database = router.db_for_write(Event)
    with transaction.atomic(using=database):
        _fit_to_columns(event).save(using=database)
        user_ids = []
        if users is not None:
            user_ids = _insert_user_recipients(event, _distinct_users(users, database), database)
        rows = [Recipient(event=event, group_id=pk) for pk in set(group_ids)]
        if audience:
            rows.append(Recipient(event=event, audience=audience))
        Recipient.objects.using(database).bulk_create(rows)
        routes = addressee_routes(user_ids, set(group_ids), [audience] if audience else [])
        publish_on_commit([(event, routes)], using=database)
    return event


def _distinct_users(users, database):
    """The users of any queryset (filtered, ordered, sliced) as one DISTINCT query on `database`."""
    users = users.using(database)
    if users.query.is_sliced:
        users = users.model._default_manager.using(database).filter(pk__in=list(users.values_list("pk", flat=True)))
    return users.order_by().distinct()


def _insert_user_recipients(event, users, database):
    """
    One INSERT ... SELECT for any number of users (bulk_create would batch by 999 params); the
    pks of the users it addressed, from the same statement where the database can return rows.
    """
    try:
        select_sql, params = users.values(recipient_id=F("pk")).query.get_compiler(using=database).as_sql()
    except EmptyResultSet:
        return []  # an empty queryset (`.none()`, `pk__in=[]`): nobody to address
    connection = connections[database]
    quote_name = connection.ops.quote_name
    recipient = Recipient._meta
    columns = [quote_name(recipient.get_field(name).column) for name in ("event", "user", "audience")]
    sql = (
        f"INSERT INTO {quote_name(recipient.db_table)} ({', '.join(columns)}) "
        f"SELECT %s, chosen.recipient_id, %s FROM ({select_sql}) chosen"
    )
    returning = connection.features.can_return_rows_from_bulk_insert
    with connection.cursor() as cursor:
        if returning:
            cursor.execute(f"{sql} RETURNING {columns[1]}", (event.pk, "", *params))
            to_python = users.model._meta.pk.to_python  # raw values: a UUID is hex text on SQLite
            return [to_python(user_id) for (user_id,) in cursor.fetchall()]
        cursor.execute(sql, (event.pk, "", *params))
    return list(users.values_list("pk", flat=True))


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
