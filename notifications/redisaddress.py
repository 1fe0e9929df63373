"""
The forms a Redis address takes, and redis-py's clients for each.

- One server: `redis://[[user]:password@]host:6379/0`, `rediss://…` (TLS), `unix:///path?db=0`.
- A primary that Sentinel manages:
  `redis+sentinel://[[user]:password@]host1:26379,host2:26379/<service>/0` (`rediss+sentinel://`
  for TLS). The Sentinels say where the primary is, and again after a failover. The credentials
  are the Redis servers'; Sentinels that want a password of their own get it as
  `?sentinel_password=…`.
- A Cluster: `redis+cluster://[[user]:password@]host1:6379,host2:6379` (`rediss+cluster://`): one
  or more of its nodes, from which the client learns the others and which node serves which slot.

One URL, so one environment variable, names any of them, as REDIS_URL does for one server. The
clients are redis-py's own (Sentinel's managed connection pools, RedisCluster, synchronous and
asyncio), which follow failovers and MOVED and ASK redirections: none of that is written here.
"""

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError
from redis.sentinel import Sentinel

SERVER, SENTINEL, CLUSTER = "server", "sentinel", "cluster"
KINDS = {
    "redis": SERVER,
    "rediss": SERVER,
    "unix": SERVER,
    "redis+sentinel": SENTINEL,
    "rediss+sentinel": SENTINEL,
    "redis+cluster": CLUSTER,
    "rediss+cluster": CLUSTER,
}
DEFAULT_PORTS = {SENTINEL: 26379, CLUSTER: 6379}
# What redis-py's Cluster clients raise while the Cluster cannot serve: it says it is down (a
# primary failed, its replica not promoted yet), or no node of the address answers, or the
# client knows no node for a slot. RedisClusterException is no RedisError.
CLUSTER_DOWN = (ClusterDownError, RedisClusterException)
# Everything a Redis that cannot serve raises, whatever the form of its address.
REDIS_ERRORS = (RedisError, RedisClusterException)


class BadAddress(ValueError):
    """Not a Redis address of any form: the message says what is wrong."""


@dataclass(frozen=True)
class Address:
    kind: str  # SERVER, SENTINEL or CLUSTER
    url: str
    nodes: tuple = ()  # (host, port) of the Sentinels, or of Cluster nodes
    service: str = ""  # the name Sentinel monitors the primary under
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    def credentials(self):
        return {"username": self.username, "password": self.password, "ssl": self.tls}


@lru_cache(maxsize=16)
def parse(url):
    """The Address a URL names; BadAddress when it names none."""
    parts = urlsplit(url)
    kind = KINDS.get(parts.scheme)
    if kind is None:
        raise BadAddress(f"its scheme is {parts.scheme or 'missing'}, not one of {', '.join(KINDS)}")
    if kind == SERVER:
        return Address(SERVER, url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    query = parse_qs(parts.query, keep_blank_values=True)
    allowed = {"sentinel_password"} if kind == SENTINEL else set()
    if set(query) - allowed:
        raise BadAddress(f"it has parameters {kind} addresses do not take: {', '.join(sorted(set(query) - allowed))}")
    path = [unquote(part) for part in parts.path.split("/") if part]
    service, db = _sentinel_path(path) if kind == SENTINEL else ("", _cluster_db(path))
    return Address(
        kind,
        url,
        nodes=tuple(_node(each, DEFAULT_PORTS[kind]) for each in hosts.split(",")),
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) if userinfo and ":" in userinfo else None,
        sentinel_password=query.get("sentinel_password", [None])[-1],
        tls=parts.scheme.startswith("rediss"),
    )


def _node(text, default_port):
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError:
        raise BadAddress(f"{text!r} has no valid port") from None
    if not parts.hostname:
        raise BadAddress(f"it names no host{f' in {text!r}' if text else ''}")
    return parts.hostname, port or default_port


def _sentinel_path(path):
    """(service, db) from /<service>[/<db>]."""
    if not path or len(path) > 2:
        raise BadAddress("its path is not /<service name>/<database>, e.g. /mymaster/0")
    return path[0], _database(path[1] if len(path) == 2 else "0")


def _cluster_db(path):
    if len(path) > 1 or _database(path[0] if path else "0") != 0:
        raise BadAddress("a Redis Cluster has database 0 only: leave the path out, or make it /0")
    return 0


def _database(text):
    if not text.isdigit():
        raise BadAddress(f"its database {text!r} is not a number")
    return int(text)


def is_cluster(url):
    return parse(url).kind == CLUSTER


def client(url, **options):
    """A synchronous client of the primary, or of the Cluster; `options`: redis-py's (timeouts, retry...)."""
    address = parse(url)
    if address.kind == SERVER:
        return redis.Redis.from_url(url, **options)
    if address.kind == SENTINEL:
        sentinel = Sentinel(address.nodes, sentinel_kwargs=_sentinel_options(address, options))
        return sentinel.master_for(address.service, db=address.db, **address.credentials(), **options)
    return RedisCluster(startup_nodes=[ClusterNode(*node) for node in address.nodes], **address.credentials(), **options)


def async_client(url, single_connection=False, **options):
    """
    An asyncio client of the primary, or of the Cluster. `single_connection`: one connection, so
    that losing it fails the next command instead of being replaced in silence (a Cluster
    client has a connection per node, and reports a lost one with the next command on it).
    """
    address = parse(url)
    if address.kind == SERVER:
        return aioredis.Redis.from_url(url, single_connection_client=single_connection, **options)
    if address.kind == SENTINEL:
        sentinel = AsyncSentinel(address.nodes, sentinel_kwargs=_sentinel_options(address, options))
        connection_class = FollowingSSLConnection if address.tls else FollowingConnection
        pool = AsyncSentinelConnectionPool(
            address.service, sentinel, connection_class=connection_class, db=address.db, **address.credentials(), **options
        )
        sentinel_client = aioredis.Redis(connection_pool=pool, single_connection_client=single_connection)
        sentinel_client.auto_close_connection_pool = True  # it owns its pool, as the other clients do
        return sentinel_client
    nodes = [AsyncClusterNode(*node) for node in address.nodes]
    return AsyncRedisCluster(startup_nodes=nodes, **address.credentials(), **options)


class AsksSentinelOnReconnect:
    """
    redis-py's asyncio connection reconnects, when a command finds it closed, to the address it
    had: a connection that is not given back to its pool between commands (a client with a
    single connection, as the relay's reader has) would call the old primary forever after a
    failover. This one asks the Sentinels where the primary is, as its pool does for a new one.
    """

    async def send_packed_command(self, command, check_health=True):
        if not self.is_connected:
            await self.connect()
        await super().send_packed_command(command, check_health)


class FollowingConnection(AsksSentinelOnReconnect, SentinelManagedConnection):
    pass


class FollowingSSLConnection(AsksSentinelOnReconnect, SentinelManagedSSLConnection):
    pass


def _sentinel_options(address, options):
    """How to reach the Sentinels: the servers' timeouts and TLS, the Sentinels' own password."""
    timeouts = {name: value for name, value in options.items() if name.startswith("socket_")}
    return {**timeouts, "password": address.sentinel_password, "ssl": address.tls}
