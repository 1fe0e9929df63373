"""
The HTTP API: what a user's feed holds, pagination, read state, JSON errors, query counts.
"""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import announce, notify
from notifications.models import Event

from .factories import make_group, make_user

pytestmark = pytest.mark.django_db

LIST = "/notifications/api/notifications/"
COUNT = "/notifications/api/unread-count/"
READ_ALL = "/notifications/api/read-all/"


def read_url(event):
    return f"/notifications/api/notifications/{event.pk}/read/"


def client_for(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def titles(response):
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["results"]]


def admin_edit(actor, group):
    """What the admin does when `actor` changes `group`: one LogEntry, one admin.change event."""
    LogEntry.objects.log_actions(actor.pk, [group], CHANGE, change_message="edited")


# What the feed holds ----------------------------------------------------------------------------


def test_the_feed_holds_the_users_inbox_newest_first():
    member, other = make_user(), make_user("other")
    group = make_group(members=[member])
    notify(member, "direct")
    notify(group, "to my group")
    notify(other, "not mine")
    announce("to everyone")
    announce("to staff", audience="staff")
    assert titles(client_for(member).get(LIST)) == ["to everyone", "to my group", "direct"]


def test_staff_see_staff_announcements():
    staff = make_user(staff=True)
    announce("to staff", audience="staff")
    assert titles(client_for(staff).get(LIST)) == ["to staff"]


def test_object_events_of_followable_models_except_ones_own():
    root = make_user("root", superuser=True)
    viewer = make_user("viewer", perms=["auth.view_group"])
    blind = make_user("blind")
    group = make_group()
    admin_edit(root, group)
    admin_edit(viewer, group)  # by the viewer: not news to the viewer
    assert len(titles(client_for(viewer).get(LIST))) == 1
    assert titles(client_for(viewer).get(LIST))[0].startswith(root.username)
    assert titles(client_for(blind).get(LIST)) == []
    assert [t.split()[0] for t in titles(client_for(root).get(LIST))] == [viewer.username]


def test_events_from_before_the_user_joined_are_not_theirs():
    announce("old news")
    Event.objects.update(created_at=timezone.now() - timezone.timedelta(days=1))
    newcomer = make_user()
    announce("fresh")
    assert titles(client_for(newcomer).get(LIST)) == ["fresh"]


# Pagination -------------------------------------------------------------------------------------


def test_pages_follow_next_until_the_end():
    user = make_user()
    for n in range(7):
        notify(user, f"n{n}")
    client = client_for(user)
    page = client.get(LIST, {"limit": 3}).json()
    seen = [item["title"] for item in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [item["title"] for item in page["results"]]
    assert seen == [f"n{n}" for n in reversed(range(7))]


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"before": "-1"}, {"before": "x"}])
def test_bad_parameters_are_json_400(query):
    response = client_for(make_user()).get(LIST, query)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert next(iter(query)) in response.json()["message"]


# Read state -------------------------------------------------------------------------------------


def test_mark_one_read_then_all_read():
    user = make_user()
    first, second, third = (notify(user, title) for title in ("first", "second", "third"))
    client = client_for(user)
    assert client.get(COUNT).json() == {"unread_count": 3}

    response = client.post(read_url(second))
    assert response.json() == {"id": second.pk, "read": True, "unread_count": 2}
    flags = {item["title"]: item["read"] for item in client.get(LIST).json()["results"]}
    assert flags == {"first": False, "second": True, "third": False}

    assert client.post(READ_ALL).json() == {"unread_count": 0}
    assert all(item["read"] for item in client.get(LIST).json()["results"])
    notify(user, "after")
    assert client.get(COUNT).json() == {"unread_count": 1}
    assert client.get(LIST).json()["results"][0] == {**client.get(LIST).json()["results"][0], "title": "after", "read": False}


def test_marking_is_per_user():
    alice, bob = make_user("alice"), make_user("bob")
    event = announce("for both")
    client_for(alice).post(read_url(event))
    client_for(alice).post(READ_ALL)
    assert client_for(bob).get(COUNT).json() == {"unread_count": 1}


def test_an_event_outside_the_feed_cannot_be_marked():
    event = notify(make_user("someone"), "not yours")
    response = client_for(make_user()).post(read_url(event))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# HTTP behaviour --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [LIST, COUNT, "/notifications/ws-ticket/"])
def test_anonymous_requests_get_json_401(url):
    response = Client().get(url)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_posts_need_a_csrf_token_and_get_json_403_without():
    user = make_user()
    event = notify(user, "x")
    client = client_for(user, enforce_csrf_checks=True)
    response = client.post(read_url(event))
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"
    client.get("/")  # a page that renders the token sets the CSRF cookie, as the widget's page does
    token = client.cookies["csrftoken"].value
    assert client.post(read_url(event), HTTP_X_CSRFTOKEN=token).status_code == 200


@pytest.mark.parametrize("method, url", [("post", LIST), ("post", COUNT), ("get", READ_ALL)])
def test_wrong_methods_get_json_405(method, url):
    response = getattr(client_for(make_user()), method)(url)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response["Allow"]


def test_answers_are_never_cached():
    response = client_for(make_user()).get(COUNT)
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


# Query counts -------------------------------------------------------------------------------------


def queries_for(client, url, **params):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured)


def test_the_list_has_no_n_plus_1():
    viewer = make_user(perms=["auth.view_group"])
    actors = [make_user(f"actor{n}") for n in range(3)]
    client = client_for(viewer)
    notify(viewer, "seed", actor=actors[0])
    few = queries_for(client, LIST, limit=20)
    for n in range(30):
        notify(viewer, f"n{n}", actor=actors[n % 3], target=Group.objects.create(name=f"g{n}-{viewer.pk}"))
        admin_edit(actors[n % 3], Group.objects.get(name=f"g{n}-{viewer.pk}"))
    assert queries_for(client, LIST, limit=20) == few


def test_the_unread_count_is_one_query_after_the_session_and_permissions():
    viewer = make_user(perms=["auth.view_group"])
    client = client_for(viewer)
    for n in range(5):
        notify(viewer, f"n{n}")
    with CaptureQueriesContext(connection) as captured:
        assert client.get(COUNT).json() == {"unread_count": 5}
    counts = [q["sql"] for q in captured if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1
    assert "notifications_event" in counts[0]
    for n in range(50):
        notify(viewer, f"more{n}")
    with CaptureQueriesContext(connection) as again:
        client.get(COUNT)
    assert len(again) == len(captured)
