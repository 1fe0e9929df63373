"""
Presence on object topics, the relay's part (notifications.presence has the model and the keys).

A socket announces itself on an object topic it follows (`presence`); the relay writes its
entry in the topic's Redis hash and, in the same transaction, a control message carrying the
`presence_diff` frame, which every relay writes to the sockets that announced themselves on
that topic (they follow its presence route: Client.announce, Relay.control): join and leave reach
every relay in the order Redis took them, with no query. A socket's first announcement on a topic
gets it the `presence_state` snapshot; its live frames are held from before the snapshot is read
until it is sent, so a diff that the snapshot predates follows it and one it already holds
changes nothing.

Entries leave with their socket: an explicit leave, an unsubscribe, a revoked permission
(Client._unfollow), a closed socket. Every REFRESH_SECONDS the relay makes Redis hold exactly
its entries (after an outage, a failed write, a Redis that lost them), telling the changes; every
SWEEP_SECONDS it removes the entries of dead relays from the topics its sockets follow, and tells them.
"""

import asyncio
import itertools
import json
import logging

from notifications import online
from notifications import presence as model
from notifications.revocation import CONTROL_MAXLEN, add_control, control_key

from . import bus, protocol
from .limits import TokenBucket

logger = logging.getLogger(__name__)

PRESENCE = "presence"  # the hub's hold reason while a snapshot is read and sent
ANNOUNCE_RATE = 1.0  # announcements a second per socket, in bursts of ANNOUNCE_BURST
ANNOUNCE_BURST = 5

# Make a topic's hash hold exactly this relay's entries given (joins told for entries added or
# changed, leaves for entries of this relay no longer given), and expire PRESENCE_TTL seconds
# from now. KEYS: the hash, the control stream. ARGV: MAXLEN, TTL, topic, this relay's key
# prefix ("<relay id>."), then key, entry JSON pairs.
RECONCILE = """
local wanted = {}
for i = 5, #ARGV, 2 do wanted[ARGV[i]] = ARGV[i + 1] end
local joins, leaves, changed = {}, {}, false
local current = redis.call('HGETALL', KEYS[1])
for i = 1, #current, 2 do
  local key = current[i]
  if string.sub(key, 1, #ARGV[4]) == ARGV[4] and wanted[key] == nil then
    redis.call('HDEL', KEYS[1], key)
    leaves[key] = {}
    changed = true
  end
end
for key, value in pairs(wanted) do
  if redis.call('HGET', KEYS[1], key) ~= value then
    redis.call('HSET', KEYS[1], key, value)
    joins[key] = cjson.decode(value)
    changed = true
  end
end
if next(wanted) ~= nil then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if changed then
  local frame = cjson.encode({type = 'presence_diff', topic = ARGV[3], joins = joins, leaves = leaves})
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'presence', ARGV[3], 'frame', frame)
end
return changed and 1 or 0
"""


class Presence:
    def __init__(self, redis, hub, relay_id, spawn):
        self.redis, self.hub, self.spawn = redis, hub, spawn
        self.prefix = f"{relay_id}."
        self.serials = itertools.count(1)
        self.keys = {}  # connection → its entry key
        self.announced = {}  # connection → {topic: entry}
        self.buckets = {}  # connection → TokenBucket, for those that announced
        self.locks = {}  # connection → asyncio.Lock: its writes, one at a time
        self.unsure = set()  # topics whose last write failed: the refresh sets them right

    # A socket's commands and life -------------------------------------------------------------------

    def refusal(self, client, topic):
        """Why this socket may not announce itself on `topic` now, as (error code, message); None: it may."""
        if not model.enabled():
            return "presence_disabled", "Presence is turned off on this site (NOTIFICATIONS_PRESENCE)."
        if not topic.startswith("object:") or topic not in client.subscriptions:
            return "not_subscribed", f"Subscribe to {topic!r}, an object: topic, before announcing yourself there."
        bucket = self.buckets.setdefault(client.connection, TokenBucket(ANNOUNCE_RATE, ANNOUNCE_BURST))
        if not bucket.take():
            return "rate_limited", "Too many presence announcements: slow down."
        return None

    def announce(self, client, topic, state):
        """
        Record the socket's entry on the topic (state None: remove it), at once, once refusal()
        said it may; the coroutine that tells Redis, or None when nothing changed.
        """
        connection = client.connection
        entries = self.announced.setdefault(connection, {})
        if state is None:
            changed = entries.pop(topic, None) is not None
        else:
            entry = model.entry(client.identity.user_id, client.identity.username, state)
            changed, entries[topic] = entries.get(topic) != entry, entry
        return self._write(connection, topic) if changed else None

    def left(self, connection, topic):
        """The socket no longer follows the topic (unsubscribed, or no longer allowed): its entry goes."""
        entries = self.announced.get(connection)
        if entries and entries.pop(topic, None) is not None:
            self.spawn(self._write(connection, topic))

    def closed(self, connection):
        """The socket closed: its entries go, then what is kept for it."""
        topics = list(self.announced.get(connection, ()))
        self.announced.pop(connection, None)
        self.buckets.pop(connection, None)
        if connection in self.keys:
            self.spawn(self._forget(connection, topics))

    async def _forget(self, connection, topics):
        try:
            for topic in topics:
                await self._write(connection, topic)
        finally:
            self.keys.pop(connection, None)
            self.locks.pop(connection, None)

    async def snapshot(self, connection, topic):
        """Send the socket the topic's presence_state (see the module's docstring)."""
        self.hub.hold(connection, PRESENCE)
        try:
            entries = await self._live_entries(topic)
            await connection.send(protocol.dumps(model.state_frame(topic, entries)))
        except bus.REDIS_DOWN as error:
            logger.debug("No presence snapshot of %s: %s", topic, error)
        finally:
            self.hub.release(connection, PRESENCE)

    def _key(self, connection):
        key = self.keys.get(connection)
        if key is None:
            key = self.keys[connection] = f"{self.prefix}{next(self.serials)}"
        return key

    # Redis --------------------------------------------------------------------------------------------

    async def _write(self, connection, topic):
        """
        Make Redis hold the socket's entry on the topic as it is now, and tell every relay. One
        write at a time per socket, each reading the entry when its turn comes: whatever order
        announcements, leaves and closes race in, the last write is the latest state.
        """
        async with self.locks.setdefault(connection, asyncio.Lock()):
            entry = self.announced.get(connection, {}).get(topic)
            entry_key, key = self._key(connection), model.hash_key(topic)
            joins, leaves = ({entry_key: entry}, {}) if entry is not None else ({}, {entry_key: {}})
            try:
                pipe = self.redis.pipeline(transaction=True)
                if entry is not None:
                    pipe.hset(key, entry_key, json.dumps(entry))
                    pipe.expire(key, model.PRESENCE_TTL)
                else:
                    pipe.hdel(key, entry_key)
                add_control(pipe, {model.FIELD: topic, "frame": protocol.dumps(model.diff_frame(topic, joins, leaves))})
                await pipe.execute()
            except bus.REDIS_DOWN as error:
                self.unsure.add(topic)
                logger.debug("Presence on %s not written (%s): the next refresh writes it", topic, error)

    async def _live_entries(self, topic):
        raw = await self.redis.hgetall(model.hash_key(topic))
        relays = sorted({model.relay_of(key) for key in raw})
        pipe = self.redis.pipeline(transaction=False)
        for relay in relays:
            pipe.exists(online.alive_key(relay))
        alive = {relay for relay, exists in zip(relays, await pipe.execute()) if exists}
        return model.live_entries(raw, alive.__contains__)

    async def run(self):
        """Refresh this relay's entries and sweep dead relays' from followed topics, until cancelled."""
        for tick in itertools.count():
            await asyncio.sleep(model.SWEEP_SECONDS)
            if not model.enabled():
                continue
            try:
                if tick % round(model.REFRESH_SECONDS / model.SWEEP_SECONDS) == 0 or self.unsure:
                    await self.refresh()
                await self.sweep()
            except bus.REDIS_DOWN as error:
                logger.debug("Presence not refreshed (%s): tried again in %s s", error, model.SWEEP_SECONDS)
            except Exception:
                logger.exception("Could not refresh presence (tried again in %s s)", model.SWEEP_SECONDS)

    async def refresh(self):
        wanted = {}
        for connection, entries in self.announced.items():
            for topic, entry in entries.items():
                wanted.setdefault(topic, {})[self.keys[connection]] = json.dumps(entry)
        unsure, self.unsure = self.unsure, set()
        try:
            for topic in wanted.keys() | unsure:
                pairs = [part for item in wanted.get(topic, {}).items() for part in item]
                keys = [model.hash_key(topic), control_key()]
                await self.redis.eval(RECONCILE, 2, *keys, CONTROL_MAXLEN, model.PRESENCE_TTL, topic, self.prefix, *pairs)
        except BaseException:
            self.unsure |= unsure
            raise

    async def sweep(self):
        """Remove dead relays' entries from the topics whose presence is followed here (notifications.presence.SWEEP)."""
        for route in self.hub.routes_starting("presence:"):
            topic = route.removeprefix("presence:")
            raw = await self.redis.hkeys(model.hash_key(topic))
            others = [key for key in raw if not key.startswith(self.prefix)]
            if not others:
                continue
            keys = [model.hash_key(topic), control_key(), *(online.alive_key(model.relay_of(key)) for key in others)]
            await self.redis.eval(model.SWEEP, len(keys), *keys, CONTROL_MAXLEN, topic, *others)

