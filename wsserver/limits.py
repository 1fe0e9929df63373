"""
What one client may cost the relay: messages per second, malformed frames in a row,
connections per user and per IP address, and replays (per relay process). Each limit has a
documented answer (docs/security.md): `rate_limited`, then close 1008; close 1008; close 1013;
`rate_limited` and `resync`.
"""

import asyncio
import contextlib
import time
from collections import Counter, OrderedDict

from notifications.conf import app_settings

from .replay import ReplayImpossible

MAX_BAD_FRAMES_IN_A_ROW = 10


class TokenBucket:
    """WSSERVER_RATE messages a second, in bursts of up to WSSERVER_BURST."""

    def __init__(self, rate=None, burst=None, clock=time.monotonic):
        self.rate = app_settings.WSSERVER_RATE if rate is None else rate
        self.burst = app_settings.WSSERVER_BURST if burst is None else burst
        self.tokens = float(self.burst)
        self.clock = clock
        self.updated = clock()

    def take(self):
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FloodGuard:
    """
    Per connection: decide each incoming frame's fate. "accept"; "refuse" (answer
    rate_limited, at most once a second so a flood does not get a flood back); "drop" (refused
    silently); "close" (1008: the flood went on past another burst of refusals, or too many
    malformed frames in a row).
    """

    def __init__(self, bucket=None, clock=time.monotonic):
        self.bucket = bucket or TokenBucket(clock=clock)
        self.clock = clock
        self.refused = 0
        self.last_answer = float("-inf")
        self.bad_frames = 0

    def admit(self):
        if self.bucket.take():
            self.refused = 0
            return "accept"
        self.refused += 1
        if self.refused > self.bucket.burst:
            return "close"
        if self.clock() - self.last_answer >= 1:
            self.last_answer = self.clock()
            return "refuse"
        return "drop"

    def malformed(self, bad):
        """Count a malformed frame (or reset on a good one); True once past the tolerance."""
        self.bad_frames = self.bad_frames + 1 if bad else 0
        return self.bad_frames > MAX_BAD_FRAMES_IN_A_ROW


class ConnectionCaps:
    """Open connections per user and per IP address, against their settings (None: no cap)."""

    def __init__(self):
        self.per_user = Counter()
        self.per_ip = Counter()

    def admit_ip(self, ip):
        return self._admit(self.per_ip, ip, app_settings.WSSERVER_MAX_CONNECTIONS_PER_IP)

    def admit_user(self, user_id):
        return self._admit(self.per_user, user_id, app_settings.WSSERVER_MAX_CONNECTIONS_PER_USER)

    def release_ip(self, ip):
        self._release(self.per_ip, ip)

    def release_user(self, user_id):
        self._release(self.per_user, user_id)

    @staticmethod
    def _admit(counter, key, cap):
        if cap is not None and counter[key] >= cap:
            return False
        counter[key] += 1
        return True

    @staticmethod
    def _release(counter, key):
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]


class ReplayGate:
    """
    What resumes may cost: per user, WSSERVER_REPLAY_RATE replays a second in bursts of
    WSSERVER_REPLAY_BURST (over: `rate_limited`, then resync), one at a time; over everyone,
    REPLAYS_AT_ONCE at a time. A connection replays once at most (its first resume, see
    client.Client.resume), so a user's burst covers all their tabs reconnecting at once.
    """

    REPLAYS_AT_ONCE = 4
    USERS_REMEMBERED = 100_000

    def __init__(self):
        self._buckets = OrderedDict()  # user key → TokenBucket, least recently used first
        self._queues = {}  # user key → [lock, replays waiting or running]
        self._everyone = asyncio.Semaphore(self.REPLAYS_AT_ONCE)

    @contextlib.asynccontextmanager
    async def admit(self, user_key):
        """Run a replay for this user within the limits; ReplayImpossible("rate_limited") when over."""
        if not self._bucket(user_key).take():
            raise ReplayImpossible("Too many resumes: slow down.", code="rate_limited")
        queue = self._queues.setdefault(user_key, [asyncio.Lock(), 0])
        queue[1] += 1
        try:
            async with queue[0], self._everyone:
                yield
        finally:
            queue[1] -= 1
            if not queue[1]:
                del self._queues[user_key]

    def _bucket(self, user_key):
        bucket = self._buckets.pop(user_key, None) or TokenBucket(
            app_settings.WSSERVER_REPLAY_RATE, app_settings.WSSERVER_REPLAY_BURST
        )
        self._buckets[user_key] = bucket
        if len(self._buckets) > self.USERS_REMEMBERED:
            self._buckets.popitem(last=False)
        return bucket
