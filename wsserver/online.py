"""
This relay process's part of "who is connected" (notifications.online): the users it has at
least one socket of, kept in Redis.

A user's first socket here adds them, their last one closing removes them; the changes go to
Redis together once every FLUSH_SECONDS (a burst of ten thousand handshakes is a few commands,
not ten thousand), and every notifications.online.REFRESH_SECONDS the set's expiry is pushed
back, with the relay's mark of life (which it sets from the start, users or not). When Redis has
lost the set meanwhile (restarted, flushed, failed over), the refresh finds it gone and writes it
whole again. On a clean stop the set is deleted at once.
"""

import asyncio
import logging
import uuid
from collections import Counter

from notifications import online

from . import bus

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5


class OnlineUsers:
    def __init__(self, redis):
        self.redis = redis
        self.relay_id = uuid.uuid4().hex[:16]
        self.key = online.users_key(self.relay_id)
        self.sockets = Counter()  # user id (str) → open sockets here
        self.added, self.removed = set(), set()
        self.stale = False  # the last flush failed: Redis's set may be anything

    def connected(self, user_id):
        user = str(user_id)
        self.sockets[user] += 1
        if self.sockets[user] == 1:
            self.removed.discard(user)
            self.added.add(user)

    def disconnected(self, user_id):
        user = str(user_id)
        self.sockets[user] -= 1
        if self.sockets[user] <= 0:
            del self.sockets[user]
            self.added.discard(user)
            self.removed.add(user)

    async def run(self):
        """Flush changes every FLUSH_SECONDS and refresh the expiry every REFRESH_SECONDS, until cancelled."""
        loop = asyncio.get_running_loop()
        refresh_at = 0.0
        while True:
            if self.added or self.removed or self.stale or loop.time() >= refresh_at:
                try:
                    await self.flush()
                    refresh_at = loop.time() + online.REFRESH_SECONDS
                except bus.REDIS_DOWN as error:
                    logger.debug("Could not tell Redis who is connected here (%s): the next flush rewrites it", error)
            await asyncio.sleep(FLUSH_SECONDS)

    async def flush(self):
        """
        Write what changed since the last flush and push the expiry back. If the set was gone
        although users were in it before (Redis lost it), or the last flush failed, write it whole.
        """
        added, removed = self.added, self.removed
        self.added, self.removed = set(), set()
        try:
            if self.stale:
                await self._rewrite()
                return
            pipe = self.redis.pipeline(transaction=True)
            pipe.exists(self.key)
            if added:
                pipe.sadd(self.key, *added)
            if removed:
                pipe.srem(self.key, *removed)
            pipe.expire(self.key, online.ONLINE_TTL)
            self._alive(pipe)
            existed = (await pipe.execute())[0]
            if not existed and len(self.sockets) > len(added):
                await self._rewrite()
        except BaseException:
            self.stale = True  # the next flush writes the whole set: what this one held is in it
            raise

    async def _rewrite(self):
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key)
        if self.sockets:
            pipe.sadd(self.key, *self.sockets)
            pipe.expire(self.key, online.ONLINE_TTL)
        self._alive(pipe)
        await pipe.execute()
        self.stale = False

    def _alive(self, pipe):
        pipe.set(online.alive_key(self.relay_id), 1, ex=online.ONLINE_TTL)
        pipe.sadd(online.registry_key(), self.relay_id)

    async def clear(self):
        """On a clean stop: this relay's users leave at once."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key, online.alive_key(self.relay_id))
        pipe.srem(online.registry_key(), self.relay_id)
        await pipe.execute()
