"""
Replaying what a client missed: the events after its cursor, up to where live delivery took
over, that travel under the routes it follows, oldest first.

They come from the Redis stream while it still holds them. The part of the range older than the
stream's oldest entry (trimmed by NOTIFICATIONS_STREAM_MAXLEN, or lost when Redis restarted
without its data) comes from the database, which records each event's stream position. The
relay's own reader recovers the same way when it finds such a gap (bus.follow). A range
longer than NOTIFICATIONS_REPLAY_WINDOW seconds, or than MAX_REPLAY events, is not replayed: the
client is told to resync over HTTP instead.
"""

from django.db.models import Max

from notifications import cursors
from notifications.conf import app_settings
from notifications.models import Event
from notifications.publishing import (
    decode_message,
    event_json,
    stored_routes,
)
from notifications.topics import topic_of_route

from . import protocol
from .bus import REDIS_DOWN
from .threads import run_sync

MAX_REPLAY = 10_000
PAGE = 1_000


class ReplayImpossible(Exception):
    """The missed events cannot all be replayed: the client must resync."""


def topic_for(routes, followed):
    """The topic an event with these routes (most specific first) is shown under, or None."""
    for route in routes:
        if route in followed:
            return topic_of_route(route)
    return None


def stored_entries(since, until=None):
    """
    (cursor, event id, routes, event JSON) of the events stored with stream positions in
    (since, until], oldest first, as the stream had them (ORM: run in a thread). ReplayImpossible
    beyond MAX_REPLAY.
    """
    events = Event.objects.filter(stream_position__gt=since)
    if until is not None:
        events = events.filter(stream_position__lte=until)
    events = list(events.select_related("actor").prefetch_related("recipients").order_by("stream_position")[: MAX_REPLAY + 1])
    if len(events) > MAX_REPLAY:
        raise ReplayImpossible(f"more than {MAX_REPLAY} events to replay")
    return [
        (cursors.cursor(event.stream_position), event.pk, stored_routes(event), event_json(event))
        for event in events
    ]


def last_published_cursor():
    """The cursor of the newest event the database records as published, "0-0" if none (ORM)."""
    return cursors.cursor(Event.objects.aggregate(last=Max("stream_position"))["last"] or 0)


def stored_frames(since, until, followed):
    """(event id, frame) of the stored events in (since, until] that `followed` routes carry."""
    frames = []
    for cursor, event_id, routes, payload in stored_entries(since, until):
        topic = topic_for(routes, followed)
        if topic is not None:
            frames.append((event_id, protocol.event(topic, cursor, payload)))
    return frames


async def missed_frames(redis, since, until, followed, now_ms):
    """The frames of everything in (since, until] the routes `followed` carry; ReplayImpossible."""
    if until <= since:
        return []
    # Position 0 is the cursor of a deployment that had published nothing yet: always in reach.
    if since and now_ms - cursors.milliseconds(since) > app_settings.NOTIFICATIONS_REPLAY_WINDOW * 1000:
        raise ReplayImpossible("the cursor is older than the replay window")
    start, frames = await _stream_frames(redis, since, until, followed)
    if start > since + 1:
        # What the stream does not hold: older than its oldest entry (trimmed, or lost when Redis
        # restarted without its data), or all of it when Redis is unreachable. The database has
        # every published position, but only for that part: the positions the stream holds are
        # written to the database just after they are added, and may not be there yet (a relay
        # draining the outbox after Redis came back).
        frames = await run_sync(stored_frames, since, start - 1, followed) + frames
    return list(_once(frames))


async def _stream_frames(redis, since, until, followed):
    """
    (start, frames): the frames of the stream's entries in [start, until], where `start` is the
    first position after `since` the stream can vouch for; what comes before it is the database's
    to give. start = until + 1 when the stream gives nothing (Redis down, or it lost entries while
    we paged).
    """
    key = app_settings.NOTIFICATIONS_STREAM_KEY
    nothing = until + 1, []
    frames = []
    try:
        oldest = await redis.xrange(key, count=1)
        if not oldest:
            return nothing
        start = max(since + 1, cursors.position(oldest[0][0]))
        after = since
        while after < until:
            entries = await redis.xrange(key, min=f"({cursors.cursor(after)}", max=cursors.cursor(until), count=PAGE)
            if not entries:
                return nothing  # nothing in the range, or the stream lost the rest while we paged
            for entry_id, fields in entries:
                event_id, routes, payload = decode_message(fields)
                topic = topic_for(routes, followed)
                if topic is not None:
                    frames.append((event_id, protocol.event(topic, entry_id, payload)))
            after = cursors.position(entries[-1][0])
            if len(frames) > MAX_REPLAY:
                raise ReplayImpossible(f"more than {MAX_REPLAY} events to replay")
    except REDIS_DOWN:
        return nothing
    return start, frames  # entries were found in the range: start <= until


def _once(frames):
    """Each event once, should it have been published twice (see publishing.PUBLISH_ONCE)."""
    seen = set()
    for event_id, frame in frames:
        if event_id not in seen:
            seen.add(event_id)
            yield frame
