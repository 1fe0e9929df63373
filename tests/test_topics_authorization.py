"""notifications.topics (names and routes) and notifications.authorization (who may follow what)."""

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings

from notifications.authorization import followable_models, inbox_routes, routes_for
from notifications.topics import Topic, TopicError, parse_topic

from .backends import SHARED_PREFIX
from .factories import make_group, make_user

pytestmark = pytest.mark.django_db

# Topic names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("inbox", Topic("inbox", "inbox")),
        ("model:*", Topic("model:*", "all_models")),
        ("model:auth.user", Topic("model:auth.user", "model", "auth.user")),
        ("model:auth.group", Topic("model:auth.group", "model", "auth.group")),
        ("model:notifications.event", Topic("model:notifications.event", "model", "notifications.event")),
        ("object:auth.user:5", Topic("object:auth.user:5", "object", "auth.user", "5")),
        ("object:sessions.session:a:b", Topic("object:sessions.session:a:b", "object", "sessions.session", "a:b")),
    ],
)
def test_parse_valid_topics(name, expected):
    assert parse_topic(name) == expected


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("model:auth.User", "model:auth.user"),
        ("model:auth.GROUP", "model:auth.group"),
        ("object:auth.User:05", "object:auth.user:5"),
        ("object:auth.Group:0012", "object:auth.group:12"),
    ],
)
def test_topic_names_are_made_canonical(name, canonical):
    """Events are published under canonical names; a subscription must follow those."""
    assert parse_topic(name).name == canonical


def test_object_topic_with_a_key_of_the_wrong_type():
    with pytest.raises(TopicError) as info:
        parse_topic("object:auth.group:abc")
    assert info.value.code == "bad_request"
    assert "not a valid Group key" in str(info.value)


def test_topic_model():
    assert parse_topic("model:auth.user").model is get_user_model()
    assert parse_topic("object:auth.group:1").model is Group


@pytest.mark.parametrize("name", ["", None, 5, ["inbox"], {"inbox": 1}, "model:auth.user" + "x" * 200])
def test_parse_malformed_topics(name):
    with pytest.raises(TopicError) as info:
        parse_topic(name)
    assert info.value.code == "bad_request"


@pytest.mark.parametrize(
    "name",
    [
        "Inbox",
        "inbox:user:1",  # a route, not a topic
        "model",
        "model:",
        "model:auth",
        "model:auth.nope",
        "model:nope.user",
        "model:**",
        "object:auth.user",
        "object:auth.user:",
        "object:nope.thing:1",
        "object::1",
        "user:1",
        "*",
    ],
)
def test_parse_unknown_topics(name):
    with pytest.raises(TopicError) as info:
        parse_topic(name)
    assert info.value.code == "unknown_topic"
    assert repr(name) in str(info.value)


# Inbox routes ---------------------------------------------------------------------------------


def test_inbox_routes_of_a_plain_user():
    user = make_user()
    assert routes_for(user, parse_topic("inbox")) == {f"inbox:user:{user.pk}", "inbox:all"}


def test_inbox_routes_include_groups_and_staff():
    first, second, other = make_group(), make_group(), make_group()
    staff = make_user(staff=True, groups=[first, second])
    assert routes_for(staff, parse_topic("inbox")) == {
        f"inbox:user:{staff.pk}",
        "inbox:all",
        "inbox:staff",
        f"inbox:group:{first.pk}",
        f"inbox:group:{second.pk}",
    }
    assert f"inbox:group:{other.pk}" not in inbox_routes(staff)


def test_inbox_routes_of_a_non_staff_group_member():
    group = make_group()
    user = make_user(groups=[group])
    routes = inbox_routes(user)
    assert f"inbox:group:{group.pk}" in routes
    assert "inbox:staff" not in routes


# Model topics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("perms", "allowed"),
    [
        (["auth.view_group"], True),
        (["auth.change_group"], True),
        (["auth.view_group", "auth.change_group"], True),
        (["auth.add_group", "auth.delete_group"], False),
        (["auth.view_user"], False),  # another model's permission
        ([], False),
    ],
)
def test_model_topic_needs_view_or_change(perms, allowed):
    user = make_user(perms=perms)
    topic = parse_topic("model:auth.group")
    if allowed:
        assert routes_for(user, topic) == {"model:auth.group"}
    else:
        with pytest.raises(TopicError) as info:
            routes_for(user, topic)
        assert info.value.code == "forbidden"


def test_model_topic_permission_through_a_group():
    group = make_group(perms=["auth.view_user"])
    user = make_user(groups=[group])
    assert routes_for(user, parse_topic("model:auth.user")) == {"model:auth.user"}


def test_inactive_user_may_not_follow_models():
    user = make_user(perms=["auth.view_group"], active=False)
    with pytest.raises(TopicError):
        routes_for(user, parse_topic("model:auth.group"))


def test_superuser_may_follow_any_model():
    root = make_user(superuser=True)
    assert routes_for(root, parse_topic("model:notifications.event")) == {"model:notifications.event"}


@pytest.mark.parametrize(
    ("name", "published_route"),
    [
        ("model:auth.Group", "model:auth.group"),
        ("model:auth.GROUP", "model:auth.group"),
        ("object:auth.Group:{pk}", "object:auth.group:{pk}"),
    ],
)
def test_subscription_routes_are_the_routes_events_are_published_under(name, published_route):
    """
    apps.get_model() is case-insensitive about model names, so "model:auth.Group" parses; events
    about groups are published under "model:auth.group" (publishing uses label_lower). A
    subscription must then follow that route, or the name must be refused: accepting it and
    following "model:auth.Group" subscribes the client to something that never receives anything.
    """
    group = make_group()
    root = make_user(superuser=True)
    name, published_route = name.format(pk=group.pk), published_route.format(pk=group.pk)
    try:
        topic = parse_topic(name)
    except TopicError:
        return  # refusing non-canonical names is a valid fix too
    assert routes_for(root, topic) == {published_route}


# model:* --------------------------------------------------------------------------------------


def test_all_models_expands_to_exactly_the_permitted_models():
    group = make_group(perms=["auth.change_user"])
    user = make_user(perms=["auth.view_group", "auth.add_permission", "auth.delete_permission"], groups=[group])
    assert followable_models(user) == {"auth.group", "auth.user"}
    assert routes_for(user, parse_topic("model:*")) == {"model:auth.group", "model:auth.user"}


def test_all_models_without_permissions_is_empty_but_allowed():
    assert routes_for(make_user(), parse_topic("model:*")) == set()


def test_all_models_for_a_superuser_is_every_model():
    root = make_user(superuser=True)
    expected = {f"model:{model._meta.label_lower}" for model in apps.get_models()}
    assert "model:notifications.event" in expected and "model:sessions.session" in expected
    assert routes_for(root, parse_topic("model:*")) == expected


# Object topics --------------------------------------------------------------------------------


def test_object_topic_with_the_model_permission():
    group = make_group()
    user = make_user(perms=["auth.view_group"])
    name = f"object:auth.group:{group.pk}"
    assert routes_for(user, parse_topic(name)) == {name}


@pytest.mark.parametrize("pk", ["existing", "999999"])
def test_object_topic_without_permission_is_forbidden(pk):
    group = make_group()
    user = make_user(perms=["auth.view_user"])
    name = f"object:auth.group:{group.pk if pk == 'existing' else pk}"
    with pytest.raises(TopicError) as info:
        routes_for(user, parse_topic(name))
    assert info.value.code == "forbidden"


@override_settings(
    AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend", "tests.backends.SharedGroupsBackend"]
)
def test_object_topic_with_an_object_permission_only():
    shared = make_group(prefix=SHARED_PREFIX.rstrip("-"))
    assert shared.name.startswith(SHARED_PREFIX)
    private = make_group()
    user = make_user()
    name = f"object:auth.group:{shared.pk}"
    assert routes_for(user, parse_topic(name)) == {name}
    with pytest.raises(TopicError):
        routes_for(user, parse_topic(f"object:auth.group:{private.pk}"))
    with pytest.raises(TopicError):
        routes_for(user, parse_topic("model:auth.group"))  # an object permission is not a model one
