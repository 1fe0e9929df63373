"""
Who has a live socket now, on any relay: what push and the email digest ask before reaching a
user who is not looking.

Each relay process keeps, in Redis, the set of users it has at least one socket of
(`<stream key>:online:<relay id>`), a mark that it is alive (`...:<relay id>:alive`), and names
itself in a registry (`<stream key>:online`). The set and the mark expire ONLINE_TTL seconds
after the relay last refreshed them (every REFRESH_SECONDS, wsserver.online), so the users of a
relay that died without a word (kill -9, a lost machine) are gone within ONLINE_TTL; Redis's
own expiry decides, so no clock of any machine is compared with another's. Whatever else a relay
keeps in Redis (notifications.presence) lives as long as its mark. Keys are named after the
stream key, so on a Cluster they share its hash slot.

Asking costs two round trips however many users are asked about: the registry, then one
SMISMEMBER per relay process in a pipeline. Relays whose mark has expired are dropped from the
registry on the way.
"""

from . import redisconf

ONLINE_TTL = 15
REFRESH_SECONDS = 5

# Remove a relay from the registry only if its mark is still gone at that instant (atomically: a
# relay that came back in between keeps its place). KEYS: the registry, the relay's mark. ARGV: its id.
FORGET_IF_GONE = "if redis.call('EXISTS', KEYS[2]) == 0 then return redis.call('SREM', KEYS[1], ARGV[1]) end return 0"


def registry_key():
    return f"{redisconf.stream_key()}:online"


def users_key(relay_id):
    return f"{registry_key()}:{relay_id}"


def alive_key(relay_id):
    return f"{users_key(relay_id)}:alive"


def connected_users(user_ids, redis=None):
    """
    The ids among `user_ids` (ints or strs, returned as given) that have a live socket on some
    relay now. Raises redisaddress.REDIS_ERRORS when Redis cannot be asked: a caller decides what
    "unknown" means for it.
    """
    user_ids = list(user_ids)
    if not user_ids:
        return set()
    redis = redis or redisconf.connection()
    relays = sorted(_text(relay) for relay in redis.smembers(registry_key()))
    if not relays:
        return set()
    names = [str(pk) for pk in user_ids]
    pipe = redis.pipeline(transaction=False)
    for relay in relays:
        pipe.exists(alive_key(relay))
        pipe.smismember(users_key(relay), names)
    answers = pipe.execute()
    found = set()
    for relay, alive, members in zip(relays, answers[0::2], answers[1::2]):
        if alive:
            found.update(pk for pk, member in zip(user_ids, members) if member)
        else:
            redis.eval(FORGET_IF_GONE, 2, registry_key(), alive_key(relay), relay)
    return found


def alive_relays(relay_ids, redis):
    """Those of these relay processes that are alive (their mark has not expired)."""
    relay_ids = sorted(relay_ids)
    pipe = redis.pipeline(transaction=False)
    for relay in relay_ids:
        pipe.exists(alive_key(relay))
    return {relay for relay, alive in zip(relay_ids, pipe.execute()) if alive}


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
