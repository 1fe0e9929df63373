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
import time

import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from notifications import cursors
from notifications.conf import app_settings
from notifications.publishing import decode_message
from notifications.revocation import control_key

from . import metrics

logger = logging.getLogger(__name__)

BLOCK_MS = 5_000
BATCH = 500
BACKOFF_BASE = 0.1
BACKOFF_MAX = 5.0
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def redis_url():
    """The URL of the django-redis cache the app publishes through (its first, if several)."""
    location = settings.CACHES[app_settings.NOTIFICATIONS_REDIS_ALIAS]["LOCATION"]
    return location[0] if isinstance(location, (list, tuple)) else location


def connect(single_connection=False):
    """
    A client for the relay. Its socket timeout outlasts XREAD's BLOCK, or an idle stream would
    look like a lost connection; redis-py's own retries are off, so the reader's backoff is the
    only one and every outage is logged.

    The reader's client has a single connection: a pool replaces a connection that died while
    it was idle with a new one without a word, and a reader busy delivering when Redis restarted
    without its data would read on in the new stream, never looking for what the old one lost.
    Its one connection fails the next command instead, and the reader recovers the gap.
    """
    return aioredis.Redis.from_url(
        redis_url(),
        decode_responses=True,
        socket_timeout=BLOCK_MS / 1000 + 10,
        socket_connect_timeout=5,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
        single_connection_client=single_connection,
    )


def backoff_delays():
    """Exponential backoff with full jitter: uniform in [0, min(max, base * 2**attempt))."""
    attempt = 0
    while True:
        yield random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt))
        attempt += 1


async def latest_entry_id(redis, key):
    """The ID of the newest entry of a stream, "0-0" when it is empty, waiting for Redis if down."""
    delays = backoff_delays()
    while True:
        try:
            newest = await redis.xrevrange(key, count=1)
            return newest[0][0] if newest else "0-0"
        except REDIS_DOWN as exc:
            delay = next(delays)
            logger.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)


class StreamReader:
    """
    Follows the events stream and the control stream (notifications.revocation) with one XREAD.

    deliver(entry_id, event_id, routes, event_json) gets each event; control(fields) each control
    message; reconnected() runs after Redis comes back (control messages may have been lost with
    it). After a reconnection, or a full batch (the reader is behind and the stream may have been
    trimmed under it), events missing from the stream are recovered first: `await
    recover(since, until)` returns them from the database, in deliver's form.
    """

    def __init__(self, redis, deliver, control, recover, reconnected):
        self.redis = redis
        self.deliver, self.control, self.recover, self.reconnected = deliver, control, recover, reconnected
        metrics.REDIS_UP.set(1)
        self.events_key = app_settings.NOTIFICATIONS_STREAM_KEY
        self.control_key = control_key()
        self.connected = True
        self.reconnects = 0
        self.down_since = None  # time.monotonic() when Redis was lost: /healthz reports it

    async def start(self, last_published):
        """
        Where reading starts: after the newest entries (what a client starting now has seen). On
        an empty stream (a new Redis, or one that lost its data), after `await last_published()`,
        the last position the database records: what was published before is then the database's
        to replay, and a gap found later is never taken to start at the beginning of time.
        """
        self.after = await latest_entry_id(self.redis, self.events_key)
        if self.after == "0-0":
            self.after = await last_published()
        self.control_after = await latest_entry_id(self.redis, self.control_key)
        return self.after

    async def run(self):
        delays = None
        check_gap = False
        while True:
            try:
                if check_gap:
                    await self._fill_gap()
                    check_gap = False
                response = await self.redis.xread(
                    {self.events_key: self.after, self.control_key: self.control_after}, count=BATCH, block=BLOCK_MS
                )
            except REDIS_DOWN as exc:
                if delays is None:
                    delays = backoff_delays()
                    self.connected, self.down_since = False, time.monotonic()
                    metrics.REDIS_UP.set(0)
                delay = next(delays)
                logger.warning("Lost Redis (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                check_gap = True
                continue
            if delays is not None:
                logger.info("Redis is back after %.1f s; reading on after %s", time.monotonic() - self.down_since, self.after)
                delays = None
                self.connected, self.down_since = True, None
                self.reconnects += 1
                metrics.REDIS_UP.set(1)
                metrics.REDIS_RECONNECTS.inc()
                self.reconnected()
            for stream, entries in response:
                if stream == self.control_key:
                    self._handle_control(entries)
                else:
                    self._handle_events(entries)
                    check_gap = len(entries) == BATCH

    def _handle_events(self, entries):
        for entry_id, fields in entries:
            try:
                event_id, routes, event_json = decode_message(fields)
            except (KeyError, ValueError):
                logger.error("Skipping malformed stream entry %s", entry_id)
            else:
                try:
                    self.deliver(entry_id, event_id, routes, event_json)
                except Exception:
                    logger.exception("Could not deliver stream entry %s", entry_id)
            self.after = entry_id

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
        for entry in missing:
            self.deliver(*entry)
            self.after = entry[0]
