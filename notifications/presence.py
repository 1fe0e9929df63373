"""
Who has an object open now: presence on `object:` topics, kept in Redis by the relays
(wsserver.presence), readable from Python with present().

A socket subscribed to an object topic may announce itself there as "viewing" or "editing"
(protocol.md, `presence`); from then on, and only then, it gets the topic's presence frames:
a `presence_state` snapshot, then a `presence_diff` for each change (a socket that never
announces itself gets none, so clients that know nothing of presence see no new frames). Each announcement is an entry of the topic's hash
(`<stream key>:presence:<topic>`), keyed by the socket (`<relay id>.<serial>`), holding the user
and the state. Whoever may follow the topic sees its entries; whoever may not never subscribes
to it, so never sees them: the subscription's authorization is the only check, and a join costs
no query.

An entry lives as long as its relay: a relay's entries count while its mark of life exists
(notifications.online, refreshed every few seconds, gone ONLINE_TTL seconds after the relay
died). Readers leave out the entries of dead relays, and the relays that have sockets on
a topic remove them and tell their sockets (SWEEP_SECONDS), so a relay killed with `kill -9`
has its users leave within ONLINE_TTL + SWEEP_SECONDS. The hash itself expires PRESENCE_TTL
seconds after the last relay with entries in it refreshed it.
"""

import json

from django.core.exceptions import ImproperlyConfigured

from . import online, redisconf
from .conf import app_settings

STATES = ("viewing", "editing")
PRESENCE_TTL = 30
REFRESH_SECONDS = 10
SWEEP_SECONDS = 5
# The control message's field naming the topic whose presence changed (revocation.py's are "user" and "group").
FIELD = "presence"

# Remove the entries of dead relays from a topic's hash and tell every relay, atomically (two
# relays sweeping the same topic tell it once). KEYS: the hash, the control stream, then the
# mark of life of each entry's relay. ARGV: the control stream's MAXLEN, the topic, then one
# entry key per mark. Returns the keys removed.
SWEEP = """
local removed = {}
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 and redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    removed[#removed + 1] = ARGV[i]
  end
end
if #removed > 0 then
  local leaves = {}
  for _, key in ipairs(removed) do leaves[key] = {} end
  local frame = cjson.encode({type = 'presence_diff', topic = ARGV[2], joins = {}, leaves = leaves})
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'presence', ARGV[2], 'frame', frame)
end
return removed
"""


def enabled():
    return bool(app_settings.NOTIFICATIONS_PRESENCE)


def hash_key(topic):
    return f"{redisconf.stream_key()}:presence:{topic}"


def presence_route(topic):
    """The route a topic's presence frames travel under (beside the topic's own, which carries its events)."""
    return f"presence:{topic}"


def relay_of(entry_key):
    return entry_key.partition(".")[0]


def entry(user_id, username, state):
    return {"user": {"id": user_id, "username": username}, "state": state}


def state_frame(topic, entries):
    """The snapshot a socket gets when it subscribes: {entry key: entry}."""
    return {"type": "presence_state", "topic": topic, "presences": entries}


def diff_frame(topic, joins=None, leaves=None):
    return {"type": "presence_diff", "topic": topic, "joins": joins or {}, "leaves": leaves or {}}


def live_entries(raw, alive):
    """{entry key: entry} of a hash's fields (HGETALL, str) whose relay is alive (alive(relay id))."""
    entries = {}
    for key, value in raw.items():
        key = key.decode() if isinstance(key, bytes) else key
        if alive(relay_of(key)):
            entries[key] = json.loads(value)
    return entries


def present(topic):
    """
    Who has the object of `topic` (an "object:<app_label>.<model>:<pk>" topic name, canonical as
    topics.parse_topic gives it) open now, one entry per user: [{"user": {"id", "username"},
    "state": "viewing" | "editing"}], editing first. Raises redisaddress.REDIS_ERRORS.
    """
    if not enabled():
        raise ImproperlyConfigured("Presence is off (NOTIFICATIONS_PRESENCE = False).")
    redis = redisconf.connection()
    raw = redis.hgetall(hash_key(topic))
    alive = online.alive_relays({relay_of(key.decode() if isinstance(key, bytes) else key) for key in raw}, redis)
    return by_user(live_entries(raw, alive.__contains__).values())


def by_user(entries):
    """One entry per user (a user with two sockets is there once, "editing" if either edits), editing first."""
    users = {}
    for each in entries:
        user_id = each["user"]["id"]
        if user_id not in users or each["state"] == "editing":
            users[user_id] = each
    return sorted(users.values(), key=lambda each: (each["state"] != "editing", each["user"]["username"]))
