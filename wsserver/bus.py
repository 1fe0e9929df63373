"""
Reading from Redis: one reader per relay process, feeding the hub.

The reader follows the streams that Django publishes to (notifications.publishing, and the
control messages of notifications.revocation) with XREAD BLOCK from the last entries it handled.
When Redis goes away it retries with exponential backoff and full jitter, then reads on from
those same entries, so what was published meanwhile still arrives, in order.
"""

import asyncio
import logging
import random

from django.db import DatabaseError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from notifications import cursors, redisaddress, redisconf
from notifications.publishing import decode_message
from notifications.revocation import control_key

from . import metrics

logger = logging.getLogger(__name__)

BLOCK_MS = 5_000
BATCH = 500
BACKOFF_BASE = 0.1
BACKOFF_MAX = 5.0
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, *redisaddress.CLUSTER_DOWN)


def connect(single_connection=False):
    """
    A client for the relay (of one server, of the primary Sentinel names, or of a Cluster: see
    notifications.redisaddress). Its socket timeout outlasts XREAD's BLOCK, or an idle stream
    would look like a lost connection; redis-py's own retries are off, so the reader's backoff is
    the only one and every outage is logged.

    The reader's client has a single connection: a pool replaces a connection that died while
    it was idle with a new one without a word, and a reader busy delivering when Redis restarted
    without its data would read on in the new stream, never looking for what the old one lost.
    Its one connection fails the next command instead, and the reader recovers the gap.
    """
    return redisaddress.async_client(
        redisconf.url(),
        single_connection=single_connection,
        decode_responses=True,
        socket_timeout=BLOCK_MS / 1000 + 10,
        socket_connect_timeout=5,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def backoff_delays():
    """Exponential backoff with full jitter: uniform in [0, min(max, base * 2**attempt))."""
    attempt = 0
    while True:
        yield random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt))
        attempt += 1


async def latest_entry_id(redis, key):
    """The ID of the newest entry of a stream, "0-0" when it is empty."""
    newest = await redis.xrevrange(key, count=1)
    return newest[0][0] if newest else "0-0"


class StreamReader:
    """
    Follows the events stream and the control stream (notifications.revocation) with one XREAD.

    deliver(entries) gets the events of each read, oldest first, as a list of (entry_id, event_id,
    routes, event_json, created_us); control(fields) each control message; reconnected() runs after Redis comes back (control messages may have
    been lost with it). After a reconnection, or a full batch (the reader is behind and the
    stream may have been trimmed under it), events missing from the stream are recovered first:
    `await recover(since, until)` returns them from the database, in deliver's form.

    Within one XREAD answer, control messages are handled before events: both streams are read
    at one instant, so an event published after a revocation never reaches a connection before
    the relay has learnt of the revocation (and held that connection's frames, see client.py).

    Outages are reported to the Diagnosis (`redis`, ERROR once with the address and the setting
    to check; a database error, for it to examine), and retried with exponential backoff and
    full jitter.
    """

    def __init__(self, redis, deliver, control, recover, reconnected, diagnosis, backlog):
        self.redis = redis
        self.backlog = backlog
        self.deliver, self.control, self.recover, self.reconnected = deliver, control, recover, reconnected
        self.diagnosis = diagnosis
        self.events_key = redisconf.stream_key()
        self.control_key = control_key()
        self.connected = False
        self.reconnects = 0
        self.after = self.control_after = None

    async def start(self, last_published):
        """
        Where reading starts: after the newest entries (what a client starting now has seen). On
        an empty stream (a new Redis, or one that lost its data), after `await last_published()`,
        the last position the database records: what was published before is then the database's
        to replay, and a gap found later is never taken to start at the beginning of time.
        """
        after = await latest_entry_id(self.redis, self.events_key)
        if after == "0-0":
            after = await last_published()
        else:
            await self._fill_backlog(after)
        self.control_after = await latest_entry_id(self.redis, self.control_key)
        self.after = after
        return after

    async def _fill_backlog(self, newest):
        """The stream's newest entries, up to `newest`, into the backlog (backlog.py), oldest first."""
        entries, before = [], newest
        while len(entries) < self.backlog.size:
            page = await self.redis.xrevrange(self.events_key, max=before, count=min(BATCH, self.backlog.size - len(entries)))
            if not page:
                break
            entries += page
            before = f"({page[-1][0]}"
        for entry_id, fields in reversed(entries):
            try:
                event_id, routes, event_json, created = decode_message(fields)
            except (KeyError, ValueError):
                continue
            self.backlog.add(cursors.position(entry_id), event_id, routes, entry_id, event_json, created)

    async def run(self, last_published, started):
        """start(), then `started(cursor)`, then follow the streams until cancelled."""
        delays = backoff_delays()
        check_gap = False
        while True:
            try:
                if self.after is None:
                    started(await self.start(last_published))
                if check_gap:
                    await self._fill_gap()
                    check_gap = False
                response = await self.redis.xread(
                    {self.events_key: self.after, self.control_key: self.control_after}, count=BATCH, block=BLOCK_MS
                )
            except REDIS_DOWN as exc:
                self._lost(exc)
                check_gap = self.after is not None
                await asyncio.sleep(next(delays))
                continue
            except DatabaseError as exc:
                self.diagnosis.database_failed(exc)
                await asyncio.sleep(next(delays))
                continue
            delays = backoff_delays()
            if not self.connected:
                self._back()
            by_stream = dict(response)
            self._handle_control(by_stream.get(self.control_key, ()))
            events = by_stream.get(self.events_key, ())
            self._handle_events(events)
            check_gap = len(events) == BATCH

    def _lost(self, error):
        if self.connected or "redis" not in self.diagnosis.problems:
            self.diagnosis.report(
                "redis",
                f"Lost Redis at {redisconf.redacted(redisconf.url())} ({error}): reconnecting with backoff, /healthz "
                f"is 503 meanwhile. Check that Redis runs and that {redisconf.source()} names it.",
            )
            metrics.REDIS_UP.set(0)
        self.connected = False

    def _back(self):
        was_down = "redis" in self.diagnosis.problems
        self.connected = True
        metrics.REDIS_UP.set(1)
        if was_down:
            self.diagnosis.clear("redis", f"Redis is back after {{lasted}}; reading on after {self.after}")
            self.reconnects += 1
            metrics.REDIS_RECONNECTS.inc()
            self.reconnected()

    def _handle_events(self, entries):
        events = []
        for entry_id, fields in entries:
            try:
                events.append((entry_id, *decode_message(fields)))
            except (KeyError, ValueError):
                logger.error("Skipping malformed stream entry %s", entry_id)
        self.deliver(events)
        if entries:
            self.after = entries[-1][0]

    def _handle_control(self, entries):
        for entry_id, fields in entries:
            try:
                self.control(fields)
            except Exception:
                logger.exception("Could not handle control message %s", entry_id)
            self.control_after = entry_id

    async def _fill_gap(self):
        """Deliver what the database has between `after` and the stream's oldest entry."""
        oldest = await self.redis.xrange(self.events_key, count=1)
        since = cursors.position(self.after)
        until = cursors.position(oldest[0][0]) - 1 if oldest else None
        if until is not None and until <= since:
            return
        missing = await self.recover(since, until)
        if missing:
            logger.warning("Recovered %d event(s) missing from the stream from the database", len(missing))
        self.deliver(missing)
        if missing:
            self.after = missing[-1][0]
