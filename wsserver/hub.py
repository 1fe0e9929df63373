"""
Which connections follow which route, and delivering events to them.

A dict of sets: route → connections. Delivering an event costs one lookup per route it carries
and one `websockets.broadcast` per topic it is shown under; each frame is built once for all
its recipients, and no write is awaited, so a slow connection never holds up the others.

Two guards keep each connection's sequence exact:
- An event id delivered once is not delivered again (a bounded memory of recent ids), whatever
  republished it.
- A connection can be *held*: its live frames wait in a buffer while it resumes (the replay of
  older events must reach it first), then are released in order, less those the replay covered.
"""

import time
from collections import OrderedDict, defaultdict

from websockets.asyncio.server import broadcast

from notifications import cursors
from notifications.topics import topic_of_route

from . import metrics, protocol

RECENT_EVENT_IDS = 100_000
MAX_HELD_FRAMES = 10_000


class Hold:
    """Live frames kept for a held connection, oldest first, as (position, route, frame)."""

    def __init__(self):
        self.frames = []
        self.overflowed = False

    def keep(self, position, route, frame):
        if len(self.frames) < MAX_HELD_FRAMES:
            self.frames.append((position, route, frame))
        else:
            self.overflowed = True


class Hub:
    def __init__(self, cursor="0-0"):
        self._followers = defaultdict(set)
        self._held = {}  # connection → Hold
        self._recent = OrderedDict()  # event ids delivered lately, oldest first
        # The stream position of the last event delivered: what a client starting now has seen.
        self.cursor = cursor
        # Broadcasts made so far: write buffers only grow when this does (see server.close_slow_clients).
        self.broadcasts = 0

    def follow(self, connection, routes):
        for route in routes:
            self._followers[route].add(connection)

    def unfollow(self, connection, routes):
        for route in routes:
            followers = self._followers.get(route)
            if followers is not None:
                followers.discard(connection)
                if not followers:
                    del self._followers[route]

    def followers(self, route):
        return set(self._followers.get(route, ()))

    def forget(self, connection):
        self._held.pop(connection, None)

    def deliver(self, cursor, event_id, routes, event_json):
        """
        Send an event to every connection following any of its routes, once each. Routes come
        most specific first (topics.object_routes), so a connection that follows both
        `object:auth.user:5` and `model:auth.user` sees the event under the object topic.
        Returns the number of connections it reached (or was held for).
        """
        self.cursor = cursor
        if event_id in self._recent:
            return 0
        metrics.EVENTS.inc()
        metrics.EVENT_LAG.observe(max(0.0, time.time() - cursors.milliseconds(cursor) / 1000))
        self._recent[event_id] = None
        if len(self._recent) > RECENT_EVENT_IDS:
            self._recent.popitem(last=False)
        reached = set()
        by_topic = {}  # topic → [frame, connections]: one frame and one broadcast per topic
        for route in routes:
            followers = self._followers.get(route)
            if not followers:
                continue
            recipients = followers - reached if reached else followers
            if recipients:
                reached |= recipients
                topic = topic_of_route(route)
                if topic not in by_topic:
                    by_topic[topic] = [protocol.event(topic, cursor, event_json), set()]
                frame, connections = by_topic[topic]
                connections |= self._keep_held(recipients, route, frame, cursor)
        for frame, connections in by_topic.values():
            broadcast(connections, frame)
        self.broadcasts += len(by_topic)
        metrics.DELIVERIES.inc(len(reached))
        return len(reached)

    def _keep_held(self, recipients, route, frame, cursor):
        """Keep the frame for held recipients (with the route it came by); the others."""
        if self._held:
            held = recipients & self._held.keys()
            if held:
                position = cursors.position(cursor)
                for connection in held:
                    self._held[connection].keep(position, route, frame)
                return recipients - held
        return recipients

    def hold(self, connection):
        """Keep this connection's live frames until release(); the cursor it has reached."""
        self._held.setdefault(connection, Hold())
        return self.cursor

    def release(self, connection, after=-1):
        """
        Send the frames held for this connection that are newer than position `after`, in order,
        without awaiting (nothing can slip between them), and deliver live again. False when the
        buffer overflowed: frames were lost and the client must resync.
        """
        hold = self._held.pop(connection, None)
        if hold is None:
            return True
        for position, _route, frame in hold.frames:
            if position > after:
                broadcast([connection], frame)
                self.broadcasts += 1
        return not hold.overflowed

    def keep_held_only(self, connection, routes):
        """
        Forget held frames that came by routes the connection no longer follows (unsubscribed,
        or revoked): none may reach it after it was told so.
        """
        hold = self._held.get(connection)
        if hold is not None:
            hold.frames = [held for held in hold.frames if held[1] in routes]

    def resync_all(self):
        """Tell every connection that events were lost and it must reload over HTTP."""
        broadcast({connection for followers in self._followers.values() for connection in followers}, protocol.resync())

    def is_held(self, connection):
        return connection in self._held
