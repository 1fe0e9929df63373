"""
Events: notify(), announce(), the admin's LogEntry, tracked models; what reaches the Redis stream
(read directly with redis-py), only after commit; constant query counts.
"""

import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from notifications import announce, notify
from notifications.models import Event, Recipient

from .factories import make_group, make_user, unique

CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

transactional = pytest.mark.django_db(transaction=True)


def only_entry(stream):
    entries = stream.new_entries()
    assert len(entries) == 1, entries
    return entries[0]


def admin_client(superuser):
    client = Client()
    client.force_login(superuser)
    return client


# notify() -------------------------------------------------------------------------------------


@transactional
def test_notify_a_user(stream):
    user, actor, group = make_user(), make_user("actor"), make_group()
    event = notify(user, "Hello", body="Body", url="/somewhere/", data={"n": 1}, actor=actor, target=group)
    _, routes, payload = only_entry(stream)
    assert routes == [f"inbox:user:{user.pk}"]
    assert payload == {
        "id": event.pk,
        "kind": "notification",
        "title": "Hello",
        "body": "Body",
        "url": "/somewhere/",
        "actor": {"id": actor.pk, "username": actor.username},
        "target": {"type": "auth.group", "id": str(group.pk), "repr": group.name},
        "created_at": payload["created_at"],
        "data": {"n": 1},
    }
    assert CREATED_AT.match(payload["created_at"])
    assert list(Recipient.objects.filter(event=event).values_list("user", "group", "audience")) == [(user.pk, None, "")]


@transactional
def test_notify_defaults(stream):
    user = make_user()
    notify(user, "Plain")
    _, _, payload = only_entry(stream)
    assert payload["kind"] == "notification"
    assert (payload["body"], payload["url"], payload["actor"], payload["target"], payload["data"]) == ("", "", None, None, {})


@transactional
def test_notify_a_group(stream):
    group = make_group(members=[make_user(), make_user()])
    event = notify(group, "To the group")
    _, routes, payload = only_entry(stream)
    assert routes == [f"inbox:group:{group.pk}"]  # one route whatever the group's size
    assert payload["id"] == event.pk
    assert list(Recipient.objects.filter(event=event).values_list("user", "group", "audience")) == [(None, group.pk, "")]


@transactional
def test_notify_a_user_queryset(stream):
    users = [make_user("qs") for _ in range(3)]
    make_user("other")
    queryset = get_user_model().objects.filter(pk__in=[u.pk for u in users])
    event = notify(queryset, "To a queryset")
    _, routes, _ = only_entry(stream)
    assert sorted(routes) == sorted(f"inbox:user:{u.pk}" for u in users)
    assert set(Recipient.objects.filter(event=event).values_list("user", flat=True)) == {u.pk for u in users}


@transactional
def test_notify_a_group_queryset(stream):
    groups = [make_group(), make_group()]
    make_group()
    notify(Group.objects.filter(pk__in=[g.pk for g in groups]), "To groups")
    _, routes, _ = only_entry(stream)
    assert sorted(routes) == sorted(f"inbox:group:{g.pk}" for g in groups)


@transactional
def test_notify_a_mixed_list(stream):
    first, second = make_user(), make_user()
    group_a, group_b = make_group(), make_group()
    event = notify([first, group_a, second, group_b, first], "Mixed")
    _, routes, _ = only_entry(stream)
    assert sorted(routes) == sorted(
        [f"inbox:user:{first.pk}", f"inbox:user:{second.pk}", f"inbox:group:{group_a.pk}", f"inbox:group:{group_b.pk}"]
    )
    assert set(Recipient.objects.filter(event=event).values_list("user", "group")) == {
        (first.pk, None), (second.pk, None), (None, group_a.pk), (None, group_b.pk)
    }


@transactional
def test_notify_a_generator(stream):
    users = [make_user(), make_user()]
    notify((u for u in users), "From a generator")
    _, routes, _ = only_entry(stream)
    assert sorted(routes) == sorted(f"inbox:user:{u.pk}" for u in users)


BAD_RECIPIENTS = {
    "a string": (lambda: "bob", TypeError),
    "a number": (lambda: 42, TypeError),
    "None": (lambda: None, TypeError),
    "a list of other objects": (lambda: [object()], TypeError),
    "an unsaved user": (lambda: [get_user_model()(username="nobody")], TypeError),
    "an unsaved group": (lambda: Group(name="nothing"), TypeError),
    "a queryset of another model": (lambda: Permission.objects.all(), TypeError),
    "an empty list": (lambda: [], ValueError),
    "an empty group queryset": (lambda: Group.objects.none(), ValueError),
}


@transactional
@pytest.mark.parametrize("case", BAD_RECIPIENTS)
def test_notify_bad_recipients(stream, case):
    make_recipients, error = BAD_RECIPIENTS[case]
    with pytest.raises(error):
        notify(make_recipients(), "Nope")
    assert not Event.objects.exists()
    assert stream.new_entries() == []


@transactional
def test_notify_an_empty_user_queryset(stream):
    """
    An empty queryset is a normal outcome of a filter ("notify every staff user" with no staff).
    notify() may refuse it with ValueError, as it refuses an empty list, or accept it; it must not
    fail with an internal error, and a failure must store nothing.
    """
    try:
        notify(get_user_model().objects.filter(pk__in=[]), "Nobody")
    except ValueError:
        assert not Event.objects.exists(), "notify() failed but left its Event row behind"
        assert stream.new_entries() == []


@transactional
def test_notify_a_sliced_user_queryset(stream):
    users = [make_user() for _ in range(3)]
    event = notify(get_user_model().objects.filter(pk__in=[u.pk for u in users]).order_by("pk")[:2], "First two")
    _, routes, _ = only_entry(stream)
    assert sorted(routes) == sorted(f"inbox:user:{u.pk}" for u in users[:2])
    assert set(Recipient.objects.filter(event=event).values_list("user", flat=True)) == {u.pk for u in users[:2]}


@transactional
def test_notify_unsaved_target(stream):
    with pytest.raises(ValueError):
        notify(make_user(), "Nope", target=Group(name="unsaved"))
    assert not Event.objects.exists()
    assert stream.new_entries() == []


# announce() -----------------------------------------------------------------------------------


@transactional
@pytest.mark.parametrize("audience", ["all", "staff"])
def test_announce(stream, audience):
    event = announce("Maintenance", body="Tonight", url="/status/", audience=audience)
    _, routes, payload = only_entry(stream)
    assert routes == [f"inbox:{audience}"]
    assert (payload["kind"], payload["title"], payload["body"], payload["url"]) == (
        "announcement", "Maintenance", "Tonight", "/status/",
    )
    assert list(Recipient.objects.filter(event=event).values_list("user", "group", "audience")) == [(None, None, audience)]


@transactional
def test_announce_default_audience_is_everyone(stream):
    announce("Hello all")
    assert only_entry(stream)[1] == ["inbox:all"]


@transactional
@pytest.mark.parametrize("audience", ["everyone", "", "STAFF", None])
def test_announce_bad_audience(stream, audience):
    with pytest.raises(ValueError):
        announce("Nope", audience=audience)
    assert stream.new_entries() == []


# The admin's log ------------------------------------------------------------------------------


def assert_admin_event(entry, kind, actor, group_pk, name, verb, url):
    _, routes, payload = entry
    assert routes == [f"object:auth.group:{group_pk}", "model:auth.group"]
    assert payload["kind"] == kind
    assert payload["title"] == f"{actor.username} {verb} group “{name}”"
    assert payload["url"] == url
    assert payload["actor"] == {"id": actor.pk, "username": actor.username}
    assert payload["target"] == {"type": "auth.group", "id": str(group_pk), "repr": name}
    assert Event.objects.filter(pk=payload["id"], kind=kind).exists()


@pytest.fixture(params=[[], ["auth.Group"]], ids=["untracked", "tracked"])
def tracking(request, settings):
    """The admin's events are the same, one per action, whether the model is tracked or not."""
    settings.NOTIFICATIONS_TRACK_MODELS = request.param


@transactional
def test_admin_addition_change_and_deletion(stream, tracking):
    root = make_user("root", superuser=True)
    client = admin_client(root)
    name = unique("team")

    response = client.post("/admin/auth/group/add/", {"name": name})
    assert response.status_code == 302, response.content
    group = Group.objects.get(name=name)
    assert_admin_event(only_entry(stream), "admin.addition", root, group.pk, name, "added", f"/admin/auth/group/{group.pk}/change/")

    stream.mark()
    renamed = unique("renamed")
    response = client.post(f"/admin/auth/group/{group.pk}/change/", {"name": renamed, "permissions": []})
    assert response.status_code == 302, response.content
    entry = only_entry(stream)
    assert_admin_event(entry, "admin.change", root, group.pk, renamed, "changed", f"/admin/auth/group/{group.pk}/change/")
    assert "Name" in entry[2]["body"]  # the admin's change message

    stream.mark()
    response = client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content
    assert not Group.objects.filter(pk=group.pk).exists()
    assert_admin_event(only_entry(stream), "admin.deletion", root, group.pk, renamed, "deleted", "/admin/auth/group/")
    assert not Event.objects.filter(kind__startswith="model.").exists()


@transactional
def test_admin_delete_selected_publishes_one_event_per_object(stream, tracking):
    root = make_user("root", superuser=True)
    groups = [make_group() for _ in range(3)]
    stream.mark()
    response = admin_client(root).post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )
    assert response.status_code == 302, response.content
    assert not Group.objects.filter(pk__in=[g.pk for g in groups]).exists()
    entries = stream.new_entries()
    assert sorted(payload["target"]["id"] for _, _, payload in entries) == sorted(str(g.pk) for g in groups)
    for group in groups:
        [entry] = [e for e in entries if e[2]["target"]["id"] == str(group.pk)]
        assert_admin_event(entry, "admin.deletion", root, group.pk, group.name, "deleted", "/admin/auth/group/")
    assert not Event.objects.filter(kind="model.deleted").exists()


@transactional
@override_settings(NOTIFICATIONS_TRACK_MODELS=["auth.Group"])
def test_a_tracked_objects_saves_outside_the_admin_still_publish_model_events(stream):
    """Even in a request that used the admin before: what the admin did does not count."""
    root = make_user("root", superuser=True)
    group = make_group()
    response = admin_client(root).post(f"/admin/auth/group/{group.pk}/change/", {"name": unique("renamed"), "permissions": []})
    assert response.status_code == 302, response.content
    stream.mark()
    group.refresh_from_db()
    group.save()
    group.delete()
    assert [payload["kind"] for payload in stream.new_events()] == ["model.updated", "model.deleted"]


@transactional
def test_admin_user_change(stream):
    root, bob = make_user("root", superuser=True), make_user("bob")
    LogEntry.objects.log_actions(root.pk, [bob], CHANGE, change_message="Changed email.", single_object=True)
    _, routes, payload = only_entry(stream)  # exactly one event, although log_actions is wrapped too
    assert routes == [f"object:auth.user:{bob.pk}", "model:auth.user"]
    assert payload["kind"] == "admin.change"
    assert payload["target"] == {"type": "auth.user", "id": str(bob.pk), "repr": bob.username}
    assert payload["url"] == f"/admin/auth/user/{bob.pk}/change/"


@transactional
def test_log_entry_saved_directly(stream):
    root, group = make_user("root", superuser=True), make_group()
    LogEntry.objects.create(
        user=root,
        content_type=ContentType.objects.get_for_model(Group),
        object_id=str(group.pk),
        object_repr=group.name,
        action_flag=ADDITION,
    )
    assert_admin_event(only_entry(stream), "admin.addition", root, group.pk, group.name, "added", f"/admin/auth/group/{group.pk}/change/")


# Tracked models -------------------------------------------------------------------------------


@transactional
def test_untracked_models_publish_nothing(stream):
    group = make_group()
    group.name = unique("renamed")
    group.save()
    group.delete()
    assert stream.new_entries() == []


@transactional
@override_settings(NOTIFICATIONS_TRACK_MODELS=["auth.Group"])
def test_tracked_model_created_updated_deleted(stream):
    name = unique("tracked")
    group = Group.objects.create(name=name)
    pk = group.pk
    group.name = renamed = unique("tracked")
    group.save()
    group.delete()
    Permission.objects.first().save()  # not tracked
    entries = stream.new_entries()
    assert [payload["kind"] for _, _, payload in entries] == ["model.created", "model.updated", "model.deleted"]
    for _, routes, payload in entries:
        assert routes == [f"object:auth.group:{pk}", "model:auth.group"]
        assert payload["actor"] is None
        assert payload["target"]["type"] == "auth.group"
        assert payload["target"]["id"] == str(pk)
    created, updated, deleted = (payload for _, _, payload in entries)
    assert created["title"] == f"Group “{name}” was created"
    assert updated["title"] == f"Group “{renamed}” was updated"
    assert deleted["title"] == f"Group “{renamed}” was deleted"
    assert created["url"] == updated["url"] == f"/admin/auth/group/{pk}/change/"
    assert deleted["url"] == "/admin/auth/group/"


@transactional
def test_tracking_follows_the_setting(stream):
    with override_settings(NOTIFICATIONS_TRACK_MODELS=["auth.group"]):
        make_group()
    make_group()  # the setting is back to its default: not tracked
    assert [payload["kind"] for payload in stream.new_events()] == ["model.created"]


# After commit ---------------------------------------------------------------------------------


@transactional
def test_nothing_is_published_before_commit(stream):
    user = make_user()
    with override_settings(NOTIFICATIONS_TRACK_MODELS=["auth.Group"]):
        with transaction.atomic():
            notify(user, "In a transaction")
            group = make_group()
            with transaction.atomic():  # a savepoint that is released
                announce("Nested")
            assert stream.new_entries() == []
    assert [(p["kind"], p["title"]) for p in stream.new_events()] == [
        ("notification", "In a transaction"),
        ("model.created", f"Group “{group.name}” was created"),
        ("announcement", "Nested"),
    ]


@transactional
def test_rolled_back_transaction_publishes_nothing(stream):
    user = make_user()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            notify(user, "Rolled back")
            announce("Rolled back too")
            raise RuntimeError
    assert stream.new_entries() == []
    assert not Event.objects.exists()
    notify(user, "Control")
    assert [p["title"] for p in stream.new_events()] == ["Control"]


@transactional
def test_rolled_back_savepoint_publishes_nothing_from_it(stream):
    user = make_user()
    with transaction.atomic():
        notify(user, "Kept")
        try:
            with transaction.atomic():
                notify(user, "Dropped")
                raise RuntimeError
        except RuntimeError:
            pass
    assert [p["title"] for p in stream.new_events()] == ["Kept"]


# Query counts ---------------------------------------------------------------------------------


def users_in_bulk(count):
    User = get_user_model()
    prefix = unique("bulk")
    return User.objects.bulk_create([User(username=f"{prefix}-{i}", password="!") for i in range(count)])


def count_queries(function):
    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_notify_group_costs_the_same_for_1_and_300_members():
    small, large = make_group(), make_group()
    small.user_set.add(*users_in_bulk(1))
    large.user_set.add(*users_in_bulk(300))
    small_cost = count_queries(lambda: notify(small, "Small"))
    large_cost = count_queries(lambda: notify(large, "Large"))
    assert small_cost == large_cost
    assert small_cost <= 4


@pytest.mark.django_db
def test_notify_user_queryset_costs_the_same_for_1_and_300_users():
    User = get_user_model()
    one, many = users_in_bulk(1), users_in_bulk(300)
    small_cost = count_queries(lambda: notify(User.objects.filter(pk__in=[u.pk for u in one]), "Small"))
    large_event = []
    large_cost = count_queries(lambda: large_event.append(notify(User.objects.filter(pk__in=[u.pk for u in many]), "Large")))
    assert small_cost == large_cost
    assert small_cost <= 5
    assert Recipient.objects.filter(event=large_event[0], user__isnull=False).count() == 300


@pytest.mark.django_db
def test_announce_costs_the_same_whatever_the_number_of_users():
    first = count_queries(lambda: announce("First"))
    users_in_bulk(300)
    assert count_queries(lambda: announce("Second")) == first


# Staying out of the host's way -------------------------------------------------------------------


def test_untracked_models_keep_django_fast_delete():
    """A receiver for every sender would make Django load each row it deletes."""
    from django.db.models.deletion import Collector

    from notifications.models import Receipt

    assert Collector("default").can_fast_delete(Receipt.objects.all())
    with override_settings(NOTIFICATIONS_TRACK_MODELS=["notifications.Receipt"]):
        assert not Collector("default").can_fast_delete(Receipt.objects.all())
    assert Collector("default").can_fast_delete(Receipt.objects.all())


def test_an_unknown_tracked_model_is_a_clear_error():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="'auth.Nope' is not an installed model"):
        with override_settings(NOTIFICATIONS_TRACK_MODELS=["auth.Nope"]):
            pass


@transactional
def test_text_too_long_for_its_column_is_shortened(stream):
    """PostgreSQL refuses over-long text; the admin's save must not fail because of an event."""
    root = make_user("r" * 125, superuser=True)  # + unique()'s suffix stays under 150
    group = Group.objects.create(name="g" * 150)
    LogEntry.objects.log_actions(root.pk, [group], CHANGE, change_message="renamed")
    event = Event.objects.get()
    assert len(event.title) == Event._meta.get_field("title").max_length
    assert event.title.startswith(root.username) and event.title.endswith("…")
    assert only_entry(stream)[2]["title"] == event.title


def test_inbox_routes_of_a_user_model_without_is_staff_or_groups():
    from types import SimpleNamespace

    from notifications.authorization import inbox_routes

    assert inbox_routes(SimpleNamespace(pk=7)) == {"inbox:user:7", "inbox:all"}
