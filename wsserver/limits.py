"""
What one client may cost the relay: messages per second, malformed frames in a row, and
connections per user and per IP address (per relay process). Each limit has a documented answer
(docs/security.md): `rate_limited`, then close 1008; close 1008; close 1013.
"""

import time
from collections import Counter

from notifications.conf import app_settings

MAX_BAD_FRAMES_IN_A_ROW = 10


class TokenBucket:
    """WSSERVER_RATE messages a second, in bursts of up to WSSERVER_BURST."""

    def __init__(self, rate=None, burst=None, clock=time.monotonic):
        self.rate = rate if rate is not None else app_settings.WSSERVER_RATE
        self.burst = burst if burst is not None else app_settings.WSSERVER_BURST
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

    def admit_user(self, user_key):
        return self._admit(self.per_user, user_key, app_settings.WSSERVER_MAX_CONNECTIONS_PER_USER)

    def release_ip(self, ip):
        self._release(self.per_ip, ip)

    def release_user(self, user_key):
        self._release(self.per_user, user_key)

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
