"""
Bursts (notifications/bursts.py): which events form one group, how it is stored, what it costs,
and what concurrent transactions make of it, on SQLite and on PostgreSQL (.ci/run runs this
module on both).
"""

import threading
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import notify
from notifications.events import create_object_events
from notifications.models import Event

from .factories import make_group, make_user

transactional = pytest.mark.django_db(transaction=True)


def object_event(actor, target, kind="admin.change", at=None):
    return Event(
        kind=kind,
        title="t",
        actor=actor,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_repr=str(target),
        created_at=at or timezone.now(),
    )


def groups_of(events):
    return {event.burst or event.pk for event in Event.objects.filter(pk__in=[e.pk for e in events])}


@transactional
def test_one_actor_kind_and_model_within_the_window_is_one_group(stream):
    actor, targets = make_user("actor"), [make_group() for _ in range(3)]
    stream.mark()
    first = create_object_events([object_event(actor, targets[0])])
    more = create_object_events([object_event(actor, target) for target in targets[1:]])
    assert more[0].burst == more[1].burst == first[0].pk and first[0].burst is None
    assert [payload["group"] for payload in stream.new_events()] == [first[0].pk] * 3


@transactional
def test_another_actor_kind_or_model_is_another_group():
    actor, other, group = make_user("actor"), make_user("other"), make_group()
    first = create_object_events([object_event(actor, group)])
    others = [
        *create_object_events([object_event(other, group)]),
        *create_object_events([object_event(actor, group, kind="admin.deletion")]),
        *create_object_events([object_event(actor, other)]),
        *create_object_events([object_event(None, group)]),
    ]
    assert len(groups_of(first + others)) == 5
    assert all(event.burst is None for event in others)


@transactional
def test_a_group_ends_with_its_window():
    actor, group = make_user("actor"), make_group()
    start = timezone.now() - timedelta(seconds=100)
    [first] = create_object_events([object_event(actor, group, at=start)])
    [within] = create_object_events([object_event(actor, group, at=start + timedelta(seconds=60))])
    [after] = create_object_events([object_event(actor, group, at=start + timedelta(seconds=61))])
    assert within.burst == first.pk and after.burst is None


@transactional
@pytest.mark.parametrize("window", [None, 0])
def test_no_window_no_groups(settings, window):
    settings.NOTIFICATIONS_GROUP_WINDOW = window
    actor, group = make_user("actor"), make_group()
    events = create_object_events([object_event(actor, group) for _ in range(3)])
    assert [event.burst for event in events] == [None] * 3


@transactional
def test_inbox_notifications_are_each_their_own_group(stream):
    user, actor = make_user(), make_user("actor")
    stream.mark()
    notify(user, "one", actor=actor)
    assert "group" not in stream.new_events()[0]


@transactional
def test_a_bulk_admin_action_is_one_group_in_constant_queries():
    root = make_user("root", superuser=True)
    few, many = [make_group() for _ in range(2)], [make_group() for _ in range(200)]

    def log(groups, flag):
        """The statements on events, but for INSERTs: SQLite's take at most 999 parameters, so 200 rows are a few."""
        with CaptureQueriesContext(connection) as queries:
            LogEntry.objects.log_actions(root.pk, groups, flag, change_message="edited")
        on_events = [q["sql"] for q in queries if "notifications_event" in q["sql"]]
        inserts = [sql for sql in on_events if sql.startswith("INSERT")]
        if connection.vendor == "postgresql":
            assert len(inserts) <= 2
        return len(on_events) - len(inserts), on_events

    assert log(few, CHANGE)[0] == log(many, CHANGE)[0] == 2  # the group looked up; the positions the stream gave
    found, statements = log(many, DELETION)
    assert found == 2 and statements[1].startswith("INSERT")  # a new group: its first event, then the 199 others
    deleted = Event.objects.filter(kind="admin.deletion", actor=root)
    assert deleted.count() == 200 and len(groups_of(deleted)) == 1


@transactional
def test_delete_selected_in_the_admin_makes_one_group():
    root = make_user("root", superuser=True)
    groups = [make_group() for _ in range(30)]
    client = Client()
    client.force_login(root)
    response = client.post(
        "/admin/auth/group/", {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"}
    )
    assert response.status_code == 302
    assert len(groups_of(Event.objects.filter(kind="admin.deletion", actor=root))) == 1


# Concurrent transactions ------------------------------------------------------------------------


def _in_thread(work):
    errors = []

    def run():
        try:
            work()
        except Exception as error:  # noqa: BLE001 (shown by the test that started the thread)
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@transactional
def test_concurrent_transactions_make_groups_of_one_actor_kind_and_model():
    """Requests racing (released together, several rounds): every group holds one actor, kind and model, every call one group."""
    actors, targets = [make_user("a"), make_user("b")], [make_group() for _ in range(4)]
    calls = []
    for _round in range(5):
        start = threading.Barrier(4)

        def request(actor, kind, start=start):
            start.wait(timeout=10)
            with transaction.atomic():
                calls.append(create_object_events([object_event(actor, target, kind=kind) for target in targets]))

        started = [_in_thread(lambda a=a, k=k: request(a, k)) for a in actors for k in ("admin.change", "admin.deletion")]
        for thread, errors in started:
            thread.join(timeout=30)
            assert not errors, errors
    for stored in calls:
        assert len(groups_of(stored)) == 1
    for group in {e.burst or e.pk for stored in calls for e in stored}:
        members = Event.objects.filter(pk=group) | Event.objects.filter(burst=group)
        assert members.values("actor", "kind", "target_type").distinct().count() == 1
    # Sequential rounds of the same actor and kind join the first group (within the window),
    # unless a racing transaction had not committed its first event yet: then a group of its own.
    for actor in actors:
        for kind in ("admin.change", "admin.deletion"):
            found = Event.objects.filter(actor=actor, kind=kind)
            assert found.count() == 5 * len(targets) and 1 <= len(groups_of(found)) <= 5


@transactional
def test_a_group_started_in_an_uncommitted_transaction_is_not_joined():
    """PostgreSQL: while one transaction holds its new group, another starts its own; later events join the newest."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one transaction write at a time: the race test above covers it")
    actor, group = make_user("actor"), make_group()
    stored, holding, release = {}, threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            stored["first"] = create_object_events([object_event(actor, group)])
            holding.set()
            assert release.wait(timeout=10)

    thread, errors = _in_thread(first)
    assert holding.wait(timeout=10)
    second = create_object_events([object_event(actor, group), object_event(actor, group)])
    release.set()
    thread.join(timeout=10)
    assert not errors, errors
    later = create_object_events([object_event(actor, group)])
    assert second[0].burst is None and second[1].burst == second[0].pk
    assert stored["first"][0].burst is None
    assert later[0].burst == max(second[0].pk, stored["first"][0].pk)


@override_settings(NOTIFICATIONS_GROUP_WINDOW=-1)
def test_a_bad_window_is_a_check_error():
    from notifications.checks import check_grouping

    [error] = check_grouping(None)
    assert error.id == "notifications.E040" and "NOTIFICATIONS_GROUP_WINDOW" in error.msg
