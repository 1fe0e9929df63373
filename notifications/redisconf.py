"""
Which Redis the events travel through, and a connection to it.

The app publishes (events, control messages, ticket nonces) through a synchronous redis-py
client; the relay reads with an asyncio client of its own, made from the same URL. One of, in
this order:

- `NOTIFICATIONS_REDIS_URL`: a Redis of its own, whatever the site's caches are;
- the cache named by `NOTIFICATIONS_REDIS_ALIAS` ("default"), when it is a Redis cache: Django's
  own `django.core.cache.backends.redis.RedisCache` or django-redis's `RedisCache`. Its
  connection pool is shared with the cache; the relay reads its first `LOCATION`.

Credentials go in the URL (`redis://:password@host:6379/0`, `rediss://` for TLS): the relay
reads nothing else of the cache's OPTIONS.
"""

import re
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .conf import app_settings

DJANGO_BACKEND = "django.core.cache.backends.redis.RedisCache"
DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"
REDIS_BACKENDS = (DJANGO_BACKEND, DJANGO_REDIS_BACKEND)
SCHEMES = ("redis", "rediss", "unix")
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
    return location[0].strip()


def redacted(address):
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(address)
    if parts.password is None:
        return address
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


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
    return redis.Redis.from_url(
        address, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT, health_check_interval=30
    )


def _settings_changed(setting, **kwargs):
    if setting in {"NOTIFICATIONS_REDIS_URL", "CACHES"}:
        _own_client.cache_clear()


setting_changed.connect(_settings_changed, dispatch_uid="notifications.redisconf.settings_changed")
