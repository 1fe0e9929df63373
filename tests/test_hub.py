"""
The hub's hold, as a data structure: what a held connection gets once what it follows changed
while it was held (a re-check running, an unsubscribe meanwhile). The sockets are stand-ins: the
hub only keeps them in sets until a hold is released.
"""

import json

from wsserver import protocol
from wsserver.hub import RECHECK, Hub

GROUP = "object:auth.group:7"
GROUPS = "model:auth.group"
ROUTES = [GROUP, GROUPS]  # most specific first, as topics.object_routes gives them
EVENT = json.dumps({"id": 1, "title": "changed"})


class Connection:
    """Hashable, as a websockets connection is; never written to in these tests."""


def held_frames(hub, connection):
    return [json.loads(held.frame) for held in hub._held[connection].frames]


def held_while_following(routes):
    hub, connection = Hub(), Connection()
    hub.follow(connection, routes)
    hub.hold(connection, RECHECK)
    hub.deliver([("5-0", 1, ROUTES, EVENT, None)])
    return hub, connection


def test_an_event_is_held_under_the_most_specific_topic_followed():
    hub, connection = held_while_following(ROUTES)
    assert held_frames(hub, connection) == [json.loads(protocol.event(GROUP, "5-0", EVENT))]


def test_unfollowing_the_specific_topic_keeps_the_held_event_under_the_wider_one():
    hub, connection = held_while_following(ROUTES)
    hub.unfollow(connection, [GROUP])
    hub.keep_held_only(connection, {GROUPS})
    assert held_frames(hub, connection) == [json.loads(protocol.event(GROUPS, "5-0", EVENT))]


def test_unfollowing_every_route_of_a_held_event_drops_it():
    hub, connection = held_while_following(ROUTES)
    hub.keep_held_only(connection, {"model:auth.user"})
    assert held_frames(hub, connection) == []
