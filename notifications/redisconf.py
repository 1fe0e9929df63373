"""
Which Redis the events travel through, and a connection to it.

The app publishes (events, control messages, ticket nonces) through a synchronous redis-py
client; the relay reads with an asyncio client of its own, made from the same address (a URL of
one of the forms of redisaddress.py: one server, a Sentinel-managed primary, a Cluster). One
of, in this order:

- `NOTIFICATIONS_REDIS_URL`: a Redis of its own, whatever the site's caches are;
- the cache named by `NOTIFICATIONS_REDIS_ALIAS` ("default"), when it is a Redis cache: Django's
  own `django.core.cache.backends.redis.RedisCache` or django-redis's `RedisCache`. Its
  connection pool is shared with the cache; the relay reads its first `LOCATION`, or, for
  django-redis's Sentinel client, its `SENTINELS` (and `SENTINEL_KWARGS`'s password) and the
  service name in its `LOCATION`.

Credentials go in the URL (`redis://:password@host:6379/0`, `rediss://` for TLS): the relay
reads nothing else of the cache's OPTIONS. (Neither cache backend reaches a Cluster: a Cluster
is for NOTIFICATIONS_REDIS_URL.)
"""

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from . import redisaddress
from .conf import app_settings

DJANGO_BACKEND = "django.core.cache.backends.redis.RedisCache"
DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"
REDIS_BACKENDS = (DJANGO_BACKEND, DJANGO_REDIS_BACKEND)
# Seconds the client of NOTIFICATIONS_REDIS_URL waits to connect or for an answer: publishing
# happens inside requests, so an unreachable Redis must cost seconds, not minutes. A cache's
# client has its OPTIONS' timeouts instead (check notifications.W003 asks for them).
TIMEOUT = 2


def source():
    """The setting that names the Redis, as a site owner would look it up."""
    if app_settings.NOTIFICATIONS_REDIS_URL:
        return "NOTIFICATIONS_REDIS_URL"
    return f"CACHES[{app_settings.NOTIFICATIONS_REDIS_ALIAS!r}]['LOCATION']"


def cache_config():
    """The CACHES entry events would travel through, or None when NOTIFICATIONS_REDIS_URL is set."""
    if app_settings.NOTIFICATIONS_REDIS_URL:
        return None
    return settings.CACHES.get(app_settings.NOTIFICATIONS_REDIS_ALIAS)


def url():
    """The Redis URL: NOTIFICATIONS_REDIS_URL, or the Redis cache's (first) LOCATION."""
    if app_settings.NOTIFICATIONS_REDIS_URL:
        return app_settings.NOTIFICATIONS_REDIS_URL
    cache = cache_config()
    if cache is None or cache.get("BACKEND") not in REDIS_BACKENDS or not cache.get("LOCATION"):
        raise ImproperlyConfigured(
            f"No Redis for notifications: set NOTIFICATIONS_REDIS_URL, or make CACHES"
            f"[{app_settings.NOTIFICATIONS_REDIS_ALIAS!r}] a Redis cache (`manage.py check` says more)."
        )
    location = cache["LOCATION"]
    if isinstance(location, str):
        location = re.split("[;,]", location)
    location = location[0].strip()
    options = cache.get("OPTIONS") or {}
    return sentinel_cache_url(location, options) if options.get("SENTINELS") else location


def sentinel_cache_url(location, options):
    """
    A django-redis Sentinel cache's address as one URL: `redis://[:password@]<service>/<db>` (its
    LOCATION) watched by OPTIONS["SENTINELS"] = [(host, port), ...], which want
    OPTIONS["SENTINEL_KWARGS"]["password"] if any, is
    `redis+sentinel://[:password@]host:port,.../<service>/<db>[?sentinel_password=...]`.
    """
    parts = urlsplit(location)
    credentials, _, service = parts.netloc.rpartition("@")
    if not service:
        raise redisaddress.BadAddress(f"its LOCATION {redacted(location)!r} names no service")
    hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in options["SENTINELS"])
    sentinel_password = (options.get("SENTINEL_KWARGS") or {}).get("password")
    return urlunsplit(
        (
            f"{parts.scheme}+sentinel",
            f"{credentials}@{hosts}" if credentials else hosts,
            f"/{service}{parts.path or '/0'}",
            urlencode({"sentinel_password": sentinel_password}) if sentinel_password else "",
            "",
        )
    )


def stream_key():
    """
    The stream's key, and the stem of every key named after it (the control stream, the
    once-only keys, the ready mark, the site's card): NOTIFICATIONS_STREAM_KEY, in braces on a
    Cluster (`{notifications:events}`), a hash tag that puts all of them in one slot. They must
    share it: the Lua scripts touch several at once, and a relay reads both streams in one XREAD.
    """
    key = app_settings.NOTIFICATIONS_STREAM_KEY
    return f"{{{key}}}" if redisaddress.is_cluster(url()) else key


def redacted(address):
    """The URL without its passwords (the servers' and the Sentinels'), for logs and error messages."""
    parts = urlsplit(address)
    if parts.password is not None:
        netloc = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}:***@" if parts.username else ":***@"
        parts = parts._replace(netloc=user + netloc)
    query = [(name, "***" if name == "sentinel_password" else value) for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def connection():
    """A synchronous redis-py client for publishing (the cache's own when events share a cache)."""
    cache = cache_config()
    if cache is None:
        return _own_client(app_settings.NOTIFICATIONS_REDIS_URL)
    backend = cache.get("BACKEND")
    if backend == DJANGO_REDIS_BACKEND:
        from django_redis import get_redis_connection

        return get_redis_connection(app_settings.NOTIFICATIONS_REDIS_ALIAS)
    if backend == DJANGO_BACKEND:
        return caches[app_settings.NOTIFICATIONS_REDIS_ALIAS]._cache.get_client(write=True)
    url()  # raises ImproperlyConfigured, saying what to set


@lru_cache(maxsize=4)
def _own_client(address):
    return redisaddress.client(address, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT, health_check_interval=30)


def _settings_changed(setting, **kwargs):
    if setting in {"NOTIFICATIONS_REDIS_URL", "CACHES"}:
        _own_client.cache_clear()


setting_changed.connect(_settings_changed, dispatch_uid="notifications.redisconf.settings_changed")
