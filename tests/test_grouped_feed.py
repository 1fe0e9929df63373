"""
The grouped feed over HTTP (notifications/grouped.py, group_views.py): items, pagination that
never splits or repeats a group, exact unread counts, a group's members, marking a group read,
and queries per page that do not grow with the groups' sizes.
"""

import json

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from notifications import notify, redisaddress, redisconf
from notifications.models import Event
from notifications.revocation import control_key

from .factories import make_group, make_user

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/notifications/api/notifications/"
GROUPED = LIST + "?grouped=1"


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def get(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()


def log(actor, objects, flag=CHANGE):
    """What the admin logs when `actor` changes (or deletes) these objects at once."""
    LogEntry.objects.log_actions(actor.pk, objects, flag, change_message="edited")


def viewer_and_bob():
    return make_user("viewer", perms=["auth.view_group"]), make_user("bob", superuser=True)


def test_a_burst_is_one_item_with_its_counts_and_title():
    viewer, bob = viewer_and_bob()
    groups = [make_group() for _ in range(5)]
    log(bob, groups[:3])
    notify(viewer, "direct")
    log(bob, groups[3:])
    body = get(client_for(viewer), GROUPED)
    direct, burst = body["results"]
    assert direct["type"] == "event" and direct["title"] == "direct" and direct["read"] is False
    members = Event.objects.filter(actor=bob).order_by("pk")
    assert burst == {
        "type": "group",
        "group": members[0].pk,
        "kind": "admin.change",
        "actor": {"id": bob.pk, "username": bob.username},
        "model": "auth.group",
        "count": 5,
        "unread_count": 5,
        "read": False,
        "muted": False,
        "first_at": burst["first_at"],
        "last_at": burst["last_at"],
        "title": f"{bob.username} changed 5 groups",
        "latest": burst["latest"],
    }
    assert burst["latest"]["id"] == members.last().pk and burst["latest"]["group"] == members[0].pk
    assert burst["first_at"] <= burst["last_at"] == burst["latest"]["created_at"]
    assert body["unread_count"] == get(client_for(viewer), LIST)["unread_count"] == 6


def test_pages_never_split_or_repeat_a_group():
    viewer, bob = viewer_and_bob()
    alice = make_user("alice", superuser=True)
    groups = [make_group() for _ in range(6)]
    for round in range(3):  # two bursts interleaved with each other and with single notifications
        log(bob, groups[:2])
        log(alice, groups[2:4], DELETION if round else CHANGE)
        notify(viewer, f"single {round}")
    client, seen, url = client_for(viewer), [], GROUPED + "&limit=1"
    while url:
        body = get(client, url)
        assert len(body["results"]) == 1
        seen += body["results"]
        url = body["next"]
    ids = [item["group"] if item["type"] == "group" else item["id"] for item in seen]
    assert ids == sorted(set(ids), reverse=True)  # newest first, each once
    counts = [item.get("count", 1) for item in seen]
    assert sum(counts) == Event.objects.count() and sorted(counts) == [1, 1, 1, 2, 4, 6]
    assert [item["title"] for item in seen if item["type"] == "group"] == [
        f"{alice.username} deleted 4 groups",
        f"{alice.username} changed 2 groups",
        f"{bob.username} changed 6 groups",
    ]


def test_group_counts_and_unread_counts_are_the_readers_own():
    viewer, bob = viewer_and_bob()
    groups = [make_group() for _ in range(4)]
    log(bob, groups)
    members = list(Event.objects.filter(actor=bob).order_by("pk"))
    client = client_for(viewer)
    client.post(f"{LIST}{members[1].pk}/read/")
    [item] = get(client, GROUPED)["results"]
    assert (item["count"], item["unread_count"], item["read"]) == (4, 3, False)
    assert get(client, GROUPED)["unread_count"] == 3
    # bob made them: his own feed leaves them out; someone who may not view groups sees nothing.
    assert get(client_for(bob), GROUPED)["results"] == []
    assert get(client_for(make_user("nobody")), GROUPED) == {"results": [], "unread_count": 0, "next": None}


def test_members_of_a_group_paginated_and_only_for_those_who_see_it():
    viewer, bob = viewer_and_bob()
    log(bob, [make_group() for _ in range(5)])
    members = list(Event.objects.filter(actor=bob).order_by("-pk"))
    group = members[-1].pk
    client, seen, url = client_for(viewer), [], f"/notifications/api/groups/{group}/?limit=2"
    while url:
        body = get(client, url)
        assert body["group"] == group
        seen += [item["id"] for item in body["results"]]
        url = body["next"]
    assert seen == [event.pk for event in members]
    summary = get(client, f"/notifications/api/groups/{group}/")["summary"]
    assert summary == get(client, GROUPED)["results"][0] and summary["count"] == 5
    assert client_for(make_user("nobody")).get(f"/notifications/api/groups/{group}/").status_code == 404
    assert client.get(f"/notifications/api/groups/{members[0].pk}/").status_code == 404  # a member, not a group
    assert client.get(f"/notifications/api/groups/{group}/?limit=0").status_code == 400


def test_marking_a_group_read_marks_its_members_and_tells_the_sockets():
    viewer, bob = viewer_and_bob()
    log(bob, [make_group() for _ in range(3)])
    notify(viewer, "left unread")
    members = list(Event.objects.filter(actor=bob).order_by("pk"))
    client = client_for(viewer)
    client.post(f"{LIST}{members[2].pk}/read/")
    redis = redisaddress.client(redisconf.url(), decode_responses=True)
    start = (redis.xrevrange(control_key(), count=1) or [("0-0", None)])[0][0]
    response = client.post(f"/notifications/api/groups/{members[0].pk}/read/")
    assert response.status_code == 200, response.content
    assert response.json() == {"group": members[0].pk, "ids": [members[0].pk, members[1].pk], "read": True, "unread_count": 1}
    entries = redis.xrange(control_key(), min=f"({start}", max="+")
    redis.close()
    [frame] = [json.loads(fields["frame"]) for _, fields in entries if fields.get("read") == str(viewer.pk)]
    assert frame == {"type": "read", "topic": "inbox", "ids": [members[0].pk, members[1].pk], "up_to": None, "unread_count": 1, "latest": frame["latest"]}
    [_, item] = get(client, GROUPED)["results"]
    assert (item["type"], item["unread_count"], item["read"]) == ("group", 0, True)
    assert client.post(f"/notifications/api/groups/{members[0].pk}/read/").json()["ids"] == []  # again: nothing left to mark
    assert client_for(make_user("nobody")).post(f"/notifications/api/groups/{members[0].pk}/read/").status_code == 404


def test_queries_per_page_do_not_grow_with_groups_or_their_sizes():
    """Two full pages (more items than the limit, within the first window of ids), small groups then large ones."""
    viewer, bob = viewer_and_bob()
    alice = make_user("alice", superuser=True)
    client = client_for(viewer)
    page = GROUPED + "&limit=5"

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert len(get(client, page)["results"]) == 5
        return len(captured)

    log(bob, [make_group() for _ in range(2)])
    for _ in range(6):
        notify(viewer, "single")
    get(client, page)  # the session loaded once
    small = queries()
    log(bob, [make_group() for _ in range(60)])  # the same group, now of 62
    log(alice, [make_group() for _ in range(200)], DELETION)
    assert queries() == small


def test_bad_grouped_parameter():
    viewer, _ = viewer_and_bob()
    response = client_for(viewer).get(LIST + "?grouped=yes")
    assert response.status_code == 400 and "grouped" in response.json()["message"]
