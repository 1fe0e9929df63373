"""
Replaying what a client missed: the events after its cursor, up to where live delivery took
over, that travel under the routes it follows, oldest first.

What is replayed is what the user's feed holds for those topics (notifications.feed): nothing
created before the user joined (the cursor counts from then at the earliest: `0-0` is "since I
joined"), and nothing beyond NOTIFICATIONS_REPLAY_WINDOW seconds: a range reaching further back
is not replayed, the client is told to resync over HTTP instead.

The events come from the relay's backlog (backlog.py: what it delivered lately, which covers
the stream's retention), then from the Redis stream for what the backlog does not hold (a relay
that could not fill it), then from the database for the part of the range older than the
stream's oldest entry (trimmed by NOTIFICATIONS_STREAM_MAXLEN, or lost when Redis restarted
without its data), which records each event's stream position; there, a query narrows the rows
to those the followed routes can carry, so a replay loads what it sends and not the whole
range. The relay's own reader recovers the same way when it finds such a gap
(bus.StreamReader), unfiltered.

A replay's work is bounded: tuples in memory for the backlog's part (looked through in chunks
between which the event loop serves others), at most MAX_SCAN stream entries read, MAX_REPLAY
events sent or rows loaded; past either, resync. Its database part runs in threads of its own
(threads.run_replay), so replays never hold up handshakes and subscriptions.
"""

import json
from dataclasses import dataclass

from django.apps import apps
from django.db.models import Max, Q

from notifications import cursors, redisconf
from notifications.conf import app_settings
from notifications.models import OBJECT_KINDS, Event, Recipient
from notifications.preferences import EVERYONE, Reader, subject_of
from notifications.publishing import decode_message, event_json, stored_routes
from notifications.rendering import is_rendered, rendered_json
from notifications.topics import topic_of_route

from . import protocol
from .bus import REDIS_DOWN
from .threads import run_replay

MAX_REPLAY = 10_000
MAX_SCAN = 20_000
PAGE = 1_000
# A user's events start when they joined; the stream's clock (Redis's) may lag the Django host's
# that stamped date_joined, so the range starts this much earlier and each event's creation
# time decides.
JOIN_SLACK_MS = 60_000


class ReplayImpossible(Exception):
    """The missed events cannot all be replayed: the client must resync (after an error `code`, if any)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def topic_for(routes, followed):
    """The route (most specific first) under which an event with these routes reaches `followed`, or None."""
    for route in routes:
        if route in followed:
            return route
    return None


@dataclass(frozen=True)
class Viewer:
    """Whom a replay is for: the routes they follow, when their user joined, how they read (mutes, language)."""

    followed: frozenset
    joined_us: int | None = None
    reader: Reader = EVERYONE

    def frame(self, cursor, routes, payload, created_us):
        """The event frame this viewer gets for this event, or None: not its topic, or before it joined."""
        route = topic_for(routes, self.followed)
        joined_us = self.joined_us
        if route is None or (joined_us is not None and created_us is not None and created_us < joined_us):
            return None
        mutes, language = self.reader.mutes, self.reader.language
        if not mutes and not language:
            return protocol.event(topic_of_route(route), cursor, payload)
        parsed = json.loads(payload)
        muted = bool(mutes) and mutes.matches(*subject_of(parsed))
        return protocol.event(topic_of_route(route), cursor, rendered_json(parsed, language) if language and is_rendered(parsed) else payload, muted)


def too_many(count):
    if count > MAX_REPLAY:
        raise ReplayImpossible(f"more than {MAX_REPLAY} events to replay")


def stored_entries(since, until=None, followed=None):
    """
    (cursor, event id, routes, event JSON, created µs) of the events stored with stream positions
    in (since, until], oldest first, as the stream had them (ORM: run in a thread); only those
    the routes `followed` may carry, when given. ReplayImpossible beyond MAX_REPLAY.
    """
    events = Event.objects.filter(stream_position__gt=since)
    if until is not None:
        events = events.filter(stream_position__lte=until)
    if followed is not None:
        events = events.filter(carried_by(followed))
    events = list(events.select_related("actor").prefetch_related("recipients").order_by("stream_position")[: MAX_REPLAY + 1])
    if len(events) > MAX_REPLAY:
        raise ReplayImpossible(f"more than {MAX_REPLAY} events to replay")
    return [
        (cursors.cursor(event.stream_position), event.pk, stored_routes(event), event_json(event), cursors.epoch_us(event.created_at))
        for event in events
    ]


def carried_by(routes):
    """
    A filter for the events that may travel under these routes: a superset (the routes of each
    row still decide), cheap to test, so a replay loads the rows it sends and few others.
    """
    users, groups, audiences, labels, objects = [], [], [], set(), Q(pk__in=[])
    for route in routes:
        kind, _, rest = route.partition(":")
        if kind == "inbox":
            addressee, _, pk = rest.partition(":")
            {"user": users, "group": groups}.get(addressee, audiences).append(pk or addressee)
        elif kind == "model":
            labels |= _with_proxies(rest)
        elif kind == "object":
            label, _, pk = rest.partition(":")
            objects |= Q(target_type__in=_with_proxies(label), target_id=pk)
    addressed = Recipient.objects.filter(Q(user_id__in=users) | Q(group_id__in=groups) | Q(audience__in=audiences))
    about = Q(target_type__in=labels) | objects
    return Q(pk__in=addressed.values("event_id")) | (Q(kind__in=OBJECT_KINDS) & about)


def _with_proxies(label):
    """A model's label and its proxies' (an event about a proxy's object travels under the concrete model's routes too)."""
    return {label} | {
        model._meta.label_lower for model in apps.get_models() if model._meta.proxy and model._meta.concrete_model._meta.label_lower == label
    }


def last_published_position():
    """The stream position of the newest event the database records as published, 0 if none (ORM)."""
    return Event.objects.aggregate(last=Max("stream_position"))["last"] or 0


def last_published_cursor():
    return cursors.cursor(last_published_position())


def stored_frames(since, until, viewer):
    """(event id, frame) of the stored events in (since, until] for the viewer."""
    frames = []
    for cursor, event_id, routes, payload, created in stored_entries(since, until, viewer.followed):
        frame = viewer.frame(cursor, routes, payload, created)
        if frame is not None:
            frames.append((event_id, frame))
    return frames


def replay_start(since, now_ms, joined_us):
    """
    Where a replay from `since` really starts: not before the user joined (less the clock
    slack). ReplayImpossible when that is older than the replay window.
    """
    if joined_us is not None:
        since = max(since, max(0, joined_us // 1000 - JOIN_SLACK_MS) * cursors.SEQUENCES_PER_MS)
    if now_ms - cursors.milliseconds(since) > app_settings.NOTIFICATIONS_REPLAY_WINDOW * 1000:
        raise ReplayImpossible("the cursor is older than the replay window")
    return since


async def missed_frames(redis, backlog, since, until, viewer, now_ms):
    """
    The frames of everything in (since, until] the viewer's routes carry, oldest first, each
    event once; ReplayImpossible. The newest part comes from the relay's backlog, what it does not
    hold from the stream, what the stream does not hold from the database.
    """
    if until <= since:
        return []
    since = replay_start(since, now_ms, viewer.joined_us)
    if until <= since:
        return []
    held_from = backlog.first if backlog.first is not None and backlog.first <= until else until + 1
    frames = await backlog.frames(max(since, held_from - 1), until, viewer) if held_from <= until else []
    if held_from - 1 > since:
        older_until = held_from - 1
        start, older = await _stream_frames(redis, since, older_until, viewer)
        if start > since + 1:
            # What the stream does not hold: older than its oldest entry (trimmed, or lost when
            # Redis restarted without its data), or all of it when Redis is unreachable. The
            # database has every published position, but only for that part: the positions the
            # stream holds are written to the database just after they are added, and may not be
            # there yet (a relay draining the outbox after Redis came back).
            older = await run_replay(stored_frames, since, min(start - 1, older_until), viewer) + older
        frames = older + frames
    too_many(len(frames))
    return list(_once(frames))


async def _stream_frames(redis, since, until, viewer):
    """
    (start, [(event id, frame)]): the frames of the stream's entries in [start, until], where
    `start` is the first position after `since` the stream can vouch for; what comes before it is
    the database's to give. start = until + 1 when the stream gives nothing: Redis is down, or
    it lost entries of the range while we read it (its oldest entry moved past `start`).
    """
    key = redisconf.stream_key()
    nothing = until + 1, []
    frames = []
    scanned = 0
    try:
        oldest = await redis.xrange(key, count=1)
        if not oldest:
            return nothing
        start = max(since + 1, cursors.position(oldest[0][0]))
        after = since
        while after < until:
            entries = await redis.xrange(key, min=f"({cursors.cursor(after)}", max=cursors.cursor(until), count=PAGE)
            if not entries:
                break  # the range is read through
            scanned += len(entries)
            if scanned > MAX_SCAN:
                raise ReplayImpossible(f"more than {MAX_SCAN} stream entries to look through")
            for entry_id, fields in entries:
                event_id, routes, payload, created = decode_message(fields)
                frame = viewer.frame(entry_id, routes, payload, created)
                if frame is not None:
                    frames.append((event_id, frame))
            too_many(len(frames))
            after = cursors.position(entries[-1][0])
        oldest = await redis.xrange(key, count=1)
        if not oldest or cursors.position(oldest[0][0]) > start:
            return nothing  # entries of the range were lost while we read: all from the database
    except REDIS_DOWN:
        return nothing
    return start, frames


def _once(frames):
    """Each event once, should it have been published twice (see publishing.PUBLISH)."""
    seen = set()
    for event_id, frame in frames:
        if event_id not in seen:
            seen.add(event_id)
            yield frame
