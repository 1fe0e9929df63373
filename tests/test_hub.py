"""
The hub's hold, as a data structure: what a held connection gets once what it follows changed
while it was held (a re-check running, an unsubscribe meanwhile). The sockets are stand-ins: the
hub only keeps them in sets until a hold is released.
"""

import json

from websockets.protocol import OPEN

from notifications import cursors
from wsserver import protocol
from wsserver.hub import RECHECK, RESUME, Hub

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


# Frames that are no events (notifications.readstate's `read`) -----------------------------------

USER_ROUTE = "inbox:user:7"
READ = json.dumps({"type": "read", "topic": "inbox", "ids": None, "up_to": 9, "unread_count": 0, "latest": 9})


class Written:
    """A stand-in open connection that records the frames written to it (fanout writes its transport)."""

    def __init__(self):
        self.data = []
        self.protocol = type("Protocol", (), {"state": OPEN, "expect_continuation_frame": False, "extensions": [], "writes": []})()
        self.transport = self
        self.logger = None

    def write(self, data):
        self.data.append(data)

    def writelines(self, lines):
        self.data.extend(lines)

    def frames(self):
        """The text payloads written (server frames are unmasked; a length over 125 takes 2 more bytes)."""
        return [json.loads(data[4:] if data[1] == 126 else data[2:]) for data in self.data]


def test_a_read_frame_reaches_the_followers_of_the_route_only():
    hub, mine, other = Hub(), Written(), Written()
    hub.follow(mine, [USER_ROUTE])
    hub.follow(other, ["inbox:user:8"])
    hub.send_unreplayed(USER_ROUTE, READ)
    assert mine.frames() == [json.loads(READ)] and other.frames() == []


def test_a_held_connection_gets_a_read_frame_in_order_whatever_its_replay_covered():
    hub, connection = Hub(), Written()
    hub.follow(connection, [USER_ROUTE])
    hub.hold(connection, RESUME)
    hub.deliver([("5-0", 1, [USER_ROUTE], EVENT, None)])
    hub.send_unreplayed(USER_ROUTE, READ)
    hub.deliver([("6-0", 2, [USER_ROUTE], json.dumps({"id": 2}), None)])
    assert connection.frames() == []
    # The replay covered both events (up to 6-0): the read frame, which no replay carries, still comes.
    hub.release(connection, RESUME, after=cursors.position("6-0"))
    assert connection.frames() == [json.loads(READ)]


def test_a_held_read_frame_is_dropped_with_its_route():
    hub, connection = Hub(), Written()
    hub.follow(connection, [USER_ROUTE, GROUPS])
    hub.hold(connection, RECHECK)
    hub.send_unreplayed(USER_ROUTE, READ)
    hub.keep_held_only(connection, {GROUPS})
    hub.release(connection, RECHECK)
    assert connection.frames() == []
