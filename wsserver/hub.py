"""
Which connections follow which route, and delivering events to them.

A dict of sets: route → connections. Delivering an event costs one lookup per route it carries
and one frame per topic it is shown under, built and framed once for all its recipients
(fanout.py); no write is awaited, so a slow connection never holds up the others.

Guards keep each connection's sequence exact and its own:
- An event id delivered once is not delivered again (a bounded memory of recent ids), whatever
  republished it.
- A connection can be *held*: its live frames wait in a buffer while it resumes (the replay of
  older events must reach it first), or while its access is re-checked (what it may no longer
  see must not reach it meanwhile), then are released in order, less those the replay covered
  and those of routes it no longer follows.
- An event created before a user joined does not reach them (the feed leaves it out too): only
  an event older than the newest connection's user can be such, so only those are looked at.
"""

import json
import logging
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

from notifications import cursors
from notifications.preferences import EVERYONE, subject_of
from notifications.rendering import is_rendered, rendered_json
from notifications.topics import topic_of_route

from . import fanout, metrics, protocol
from .backlog import Backlog
from .replay import topic_for

logger = logging.getLogger(__name__)

RECENT_EVENT_IDS = 100_000
MAX_HELD_FRAMES = 10_000


RESUME = "resume"
RECHECK = "recheck"
PLAIN = (False, "")  # the variant of an event's frame everyone who reads alike gets: not muted, the site's language


class Hold:
    """
    Live frames kept for a held connection, oldest first, as HeldFrame, for as long as any of
    its reasons (RESUME, RECHECK) lasts; then those after `after` are sent.
    """

    def __init__(self):
        self.frames = []
        self.overflowed = False
        self.reasons = set()
        self.after = -1

    def keep(self, held):
        if len(self.frames) < MAX_HELD_FRAMES:
            self.frames.append(held)
        else:
            self.overflowed = True


@dataclass(frozen=True)
class HeldFrame:
    """A frame waiting for a held connection, with what it takes to show it under another topic."""

    position: int | None  # None: no event (a read frame), which no replay covers
    topic: str
    frame: str
    routes: tuple  # all of the event's routes, most specific first
    cursor: str
    event_json: str
    muted: bool = False  # for a connection whose user muted the event

    def for_routes(self, followed):
        """This frame as a connection following `followed` gets it now: under another topic, or None."""
        route = topic_for(self.routes, followed)
        if route is None:
            return None
        topic = topic_of_route(route)
        if topic == self.topic:
            return self
        frame = protocol.event(topic, self.cursor, self.event_json, self.muted)
        return HeldFrame(self.position, topic, frame, self.routes, self.cursor, self.event_json, self.muted)


class _Published:
    """
    One event as it reaches readers who are not like everyone (notifications.preferences.Reader):
    parsed once, and only when such a reader is among its recipients; its (kind, topics) for their
    mutes, and its JSON in each of their languages, each worked out once.
    """

    __slots__ = ("event_json", "_payload", "_subject", "_languages")

    def __init__(self, event_json):
        self.event_json, self._payload, self._subject, self._languages = event_json, None, None, {}

    def payload(self):
        if self._payload is None:
            self._payload = json.loads(self.event_json)
        return self._payload

    def variant(self, reader):
        """(muted, language) of the frame a reader gets: language "" when the event reads the same in every language."""
        muted = False
        if reader.mutes:
            if self._subject is None:
                self._subject = subject_of(self.payload())
            muted = reader.mutes.matches(*self._subject)
        return muted, reader.language if reader.language and is_rendered(self.payload()) else ""

    def json_in(self, language):
        """The event's JSON with its title and body in `language` ("": the site's, as published)."""
        if not language:
            return self.event_json
        if language not in self._languages:
            self._languages[language] = rendered_json(self.payload(), language)
        return self._languages[language]


def _joined_by(connections, created_us):
    """Those of the connections whose user had joined when the event was created."""
    return {c for c in connections if (c.client.identity.joined_us or 0) <= created_us}


class Hub:
    def __init__(self, cursor="0-0"):
        self._followers = defaultdict(set)
        self._held = {}  # connection → Hold
        self._recent = OrderedDict()  # event ids delivered lately, oldest first
        # The stream position of the last event delivered: what a client starting now has seen.
        self.cursor = cursor
        # Broadcasts made so far: write buffers only grow when this does (see server.close_slow_clients).
        self.broadcasts = 0
        # When the most recently joined user of any connection joined (µs; see joined()).
        self.newest_join = 0
        self.backlog = Backlog()  # what was delivered lately, for replays
        # Connections whose user reads unlike everyone (muted something, or reads another language
        # than the site's: notifications.preferences.Reader, its language resolved) → their Reader.
        # An event is looked at for them only: a site where everyone reads alike pays nothing per event.
        self._readers = {}

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

    def routes_starting(self, prefix):
        """The routes someone follows here that start with `prefix`."""
        return [route for route in self._followers if route.startswith(prefix)]

    def followers(self, route):
        return set(self._followers.get(route, ()))

    def forget(self, connection):
        self._held.pop(connection, None)
        self._readers.pop(connection, None)

    def set_reader(self, connection, reader):
        """
        How the connection's user reads events from now on: their frames of muted events say
        `"muted":true`, and admin and model events come in their language ("": the site's).
        """
        if reader:
            self._readers[connection] = reader
        else:
            self._readers.pop(connection, None)

    def reader_of(self, connection):
        return self._readers.get(connection, EVERYONE)

    def _variants_among(self, recipients, published):
        """{(muted, language): connections} for those of the recipients who read unlike everyone."""
        readers = self._readers
        special = [c for c in recipients if c in readers] if len(recipients) < len(readers) else recipients.intersection(readers)
        variants = defaultdict(set)
        for connection in special:
            variant = published.variant(readers[connection])
            if variant != PLAIN:
                variants[variant].add(connection)
        return variants

    def joined(self, joined_us):
        """A connection's user joined then (µs since the epoch, or None when unknown)."""
        if joined_us is not None and joined_us > self.newest_join:
            self.newest_join = joined_us

    def deliver(self, entries):
        """
        Deliver events, oldest first: [(cursor, event id, routes, event JSON, created µs or None)],
        as one read of the stream brings them. Each connection's frames are queued, then written
        to it together once every event is decided (fanout.Writes), with no await in between:
        nothing else can write to a connection meanwhile, so its frames keep their order.
        """
        writes = fanout.Writes()
        for entry in entries:
            try:
                self._deliver(writes, *entry)
            except Exception:
                logger.exception("Could not deliver stream entry %s", entry[0])
        writes.flush()

    def _deliver(self, writes, cursor, event_id, routes, event_json, created_us):
        """
        Queue an event for every connection following any of its routes, once each. Routes come
        most specific first (topics.object_routes), so a connection that follows both
        `object:auth.user:5` and `model:auth.user` sees the event under the object topic.
        Connections whose user joined after the event was created are left out. Those whose user
        reads unlike everyone (set_reader) get their own variant of the frame, made once.
        """
        self.cursor = cursor
        if event_id in self._recent:
            return
        metrics.EVENTS.inc()
        metrics.EVENT_LAG.observe(max(0.0, time.time() - cursors.milliseconds(cursor) / 1000))
        self._recent[event_id] = None
        if len(self._recent) > RECENT_EVENT_IDS:
            self._recent.popitem(last=False)
        self.backlog.add(cursors.position(cursor), event_id, routes, cursor, event_json, created_us)
        reached = set()
        by_topic = {}  # (topic, muted, language) → [frame, connections]: one frame per topic and variant
        published = _Published(event_json) if self._readers else None
        for route in routes:
            followers = self._followers.get(route)
            if not followers:
                continue
            recipients = followers - reached if reached else followers
            if created_us is not None and created_us < self.newest_join:
                recipients = _joined_by(recipients, created_us)
            if not recipients:
                continue
            reached |= recipients
            topic = topic_of_route(route)
            variants = self._variants_among(recipients, published) if published is not None else None
            if variants:
                for variant, connections in variants.items():
                    self._queue(by_topic, topic, variant, connections, cursor, routes, published.json_in(variant[1]))
                recipients = recipients - set().union(*variants.values())
            if recipients:
                self._queue(by_topic, topic, PLAIN, recipients, cursor, routes, event_json)
        for frame, connections in by_topic.values():
            writes.send(connections, frame)
        self.broadcasts += len(by_topic)
        metrics.DELIVERIES.inc(len(reached))

    def _queue(self, by_topic, topic, variant, recipients, cursor, routes, event_json):
        """Add recipients to the frame of this topic and variant, made on first use; held ones keep it."""
        muted = variant[0]
        if (topic, *variant) not in by_topic:
            by_topic[topic, *variant] = [protocol.event(topic, cursor, event_json, muted), set()]
        frame, connections = by_topic[topic, *variant]
        connections |= self._keep_held(
            recipients, lambda: HeldFrame(cursors.position(cursor), topic, frame, tuple(routes), cursor, event_json, muted)
        )

    def _keep_held(self, recipients, held_frame):
        """Keep a frame, made by held_frame() only when needed, for held recipients; the others."""
        if self._held:
            held = recipients & self._held.keys()
            if held:
                kept = held_frame()
                for connection in held:
                    self._held[connection].keep(kept)
                return recipients - held
        return recipients

    def send_unreplayed(self, route, frame):
        """
        Send a frame that is no event (notifications.readstate's `read`) to every follower of
        `route`, now. It has no cursor and no replay carries it: a held connection gets it in
        order among its held frames, whatever its replay covered (and not at all if it stops
        following the route meanwhile).
        """
        followers = self._followers.get(route)
        if not followers or not frame:
            return
        recipients = self._keep_held(followers, lambda: HeldFrame(None, topic_of_route(route), frame, (route,), "", ""))
        fanout.send(recipients, frame)
        self.broadcasts += 1

    def hold(self, connection, reason):
        """Keep this connection's live frames until released for every reason; the cursor it has reached."""
        self._held.setdefault(connection, Hold()).reasons.add(reason)
        return self.cursor

    def release(self, connection, reason, after=-1):
        """
        The hold's `reason` is over (and what a replay sent reaches position `after`). Once no
        reason is left, send the frames held for this connection that are newer than that, in
        order, without awaiting (nothing can slip between them), and deliver live again. False
        when the buffer overflowed: frames were lost and the client must resync.
        """
        hold = self._held.get(connection)
        if hold is None:
            return True
        hold.reasons.discard(reason)
        hold.after = max(hold.after, after)
        if hold.reasons:
            return True  # its frames wait for the other reason; an overflow is told when it ends
        del self._held[connection]
        writes = fanout.Writes()
        for held in hold.frames:
            if held.position is None or held.position > hold.after:
                writes.send([connection], held.frame)
        writes.flush()
        self.broadcasts += 1
        return not hold.overflowed

    def keep_held_only(self, connection, routes):
        """
        Keep the held frames as the routes the connection follows now would have delivered them:
        those of events it no longer follows are forgotten (unsubscribed, or revoked: none may
        reach it after it was told so), the others shown under their most specific topic still followed.
        """
        hold = self._held.get(connection)
        if hold is not None:
            hold.frames = [kept for held in hold.frames if (kept := held.for_routes(routes)) is not None]

    def resync_all(self):
        """Tell every connection that events were lost and it must reload over HTTP."""
        self.backlog.clear()
        fanout.send({connection for followers in self._followers.values() for connection in followers}, protocol.resync())

    def is_held(self, connection, reason):
        hold = self._held.get(connection)
        return hold is not None and reason in hold.reasons
