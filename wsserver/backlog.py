"""
The latest events this relay delivered, in stream order, kept for replays.

A replay picks, from a range of the stream, the events a connection's routes carry. Reading
that range from Redis costs the whole range: every entry crosses the socket and is parsed,
payload and all, however few match (10,000 entries for a `resume` from a day ago, for nothing
when the user has nothing to receive: replay amplification). The relay has read every one of
those entries already, so it keeps the newest of them here, as delivered: a replay looks through
tuples in memory and builds frames only for the events it sends. Filled from the stream when
the relay starts (so it covers the stream's retention at once), then by every delivery (the
reader's recoveries from the database included), so it holds one unbroken run of positions;
should the run break (events the relay could not recover), it starts again.

Memory: one tuple and the event's JSON (already built for delivery) per entry, at most SIZE.
"""

import asyncio
from bisect import bisect_right
from collections import deque

from notifications.conf import app_settings

from .replay import too_many

# Entries kept: the stream's retention, at most 50,000 (about 500 bytes each).
SIZE_LIMIT = 50_000
# Entries looked through between two yields to the event loop: a long replay never holds it up.
CHUNK = 2_000


class Backlog:
    def __init__(self, size=None):
        self.size = size or min(app_settings.NOTIFICATIONS_STREAM_MAXLEN, SIZE_LIMIT)
        self._positions = deque(maxlen=self.size)  # stream positions, increasing
        self._entries = deque(maxlen=self.size)  # (event id, routes, cursor, event JSON, created µs)

    def add(self, position, event_id, routes, cursor, event_json, created_us):
        if self._positions and position <= self._positions[-1]:
            return  # not after the last: the run would not be in stream order
        self._positions.append(position)
        self._entries.append((event_id, tuple(routes), cursor, event_json, created_us))

    def clear(self):
        """The run broke (events lost): what follows starts a new one."""
        self._positions.clear()
        self._entries.clear()

    @property
    def first(self):
        """The oldest position held; None when empty."""
        return self._positions[0] if self._positions else None

    async def frames(self, since, until, viewer):
        """[(event id, frame)] of the held events in (since, until] that the viewer's routes carry (replay.Viewer)."""
        frames = []
        positions, entries = list(self._positions), list(self._entries)  # a delivery may append meanwhile
        start = bisect_right(positions, since)
        for offset in range(start, len(positions), CHUNK):
            for position, (event_id, routes, cursor, event_json, created) in zip(
                positions[offset : offset + CHUNK], entries[offset : offset + CHUNK]
            ):
                if position > until:
                    return frames
                frame = viewer.frame(cursor, routes, event_json, created)
                if frame is not None:
                    frames.append((event_id, frame))
            too_many(len(frames))
            await asyncio.sleep(0)
        return frames
