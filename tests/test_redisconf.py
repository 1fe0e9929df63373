"""
Either Redis cache backend, or a Redis URL of the app's own, carries the events: publishing,
tickets, control messages and a relay all work with Django's built-in RedisCache, with
django-redis, and with NOTIFICATIONS_REDIS_URL beside a cache that is not Redis at all. The
Sentinel and Cluster addresses are read here; tests/test_redis_deployments.py runs real ones.
"""

import re

import pytest
from django.conf import settings
from django.test import override_settings
from redis.crc import key_slot

from notifications import notify, redisaddress, redisconf
from notifications.checks import check_redis
from notifications.deployment import card_key
from notifications.publishing import published_key, ready_key
from notifications.revocation import control_key
from notifications.tickets import check_ticket, issue_ticket

from .aio import call
from .factories import login, make_user

URL = settings.CACHES["default"]["LOCATION"]
CHOICES = {
    "django-redis": {"CACHES": {"default": {**settings.CACHES["default"], "LOCATION": URL}}},
    "django": {
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": URL,
                "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
            }
        }
    },
    "url": {
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        "NOTIFICATIONS_REDIS_URL": URL,
    },
}


@pytest.fixture(params=list(CHOICES))
def choice(request):
    with override_settings(**CHOICES[request.param]):
        yield request.param


@pytest.mark.django_db(transaction=True)
def test_events_and_tickets_travel_through_each_choice(choice, stream):
    user = make_user()
    event = notify(user, f"through {choice}")
    assert [(each["id"], each["title"]) for each in stream.new_events()] == [(event.pk, f"through {choice}")]
    assert redisconf.url() == URL and check_redis(None) == []

    session_key = login(user).session_key
    checked, bound_to = check_ticket(issue_ticket(user, session_key))
    assert checked.user == user and bound_to == session_key


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"CACHES": CHOICES["url"]["CACHES"]}, "notifications.E001"),
        ({**CHOICES["url"], "NOTIFICATIONS_REDIS_URL": "http://127.0.0.1:6379/0"}, "notifications.E007"),
    ],
    ids=["no Redis at all", "not a Redis URL"],
)
def test_the_check_explains_the_choice(overrides, expected):
    with override_settings(**overrides):
        [error] = check_redis(None)
    assert error.id == expected
    if expected == "notifications.E001":
        assert "NOTIFICATIONS_REDIS_URL" in error.hint and redisconf.DJANGO_BACKEND in error.hint
        assert redisconf.DJANGO_REDIS_BACKEND in error.hint


@pytest.mark.parametrize("redis_choice", ["django", "url"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_orm_thread_connection")
async def test_a_relay_reads_through_each_choice(relay_factory, ws_clients, redis_choice):
    relay = await call(relay_factory, settings_module="tests.settings_redis_choice", extra_env={"REDIS_CHOICE": redis_choice})
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    with override_settings(**CHOICES[redis_choice]):
        await call(notify, user, f"relayed through {redis_choice}")
    await client.expect_event(f"relayed through {redis_choice}")


@pytest.mark.parametrize(
    "url, expected",
    [
        (
            "redis+sentinel://:pw@10.0.0.1:5000,sentinel.example/mymaster/2?sentinel_password=s%26w",
            {"nodes": (("10.0.0.1", 5000), ("sentinel.example", 26379)), "service": "mymaster", "db": 2, "password": "pw", "sentinel_password": "s&w"},
        ),
        ("rediss+sentinel://me:p%40w@[::1]:5000/Master", {"nodes": (("::1", 5000),), "service": "Master", "db": 0, "username": "me", "password": "p@w", "tls": True}),
        ("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2", {"nodes": (("10.0.0.1", 7000), ("10.0.0.2", 6379)), "password": "pw", "tls": False}),
        ("rediss+cluster://10.0.0.1:7000/0", {"nodes": (("10.0.0.1", 7000),), "tls": True}),
        ("unix:///run/redis.sock?db=1", {"kind": redisaddress.SERVER}),
    ],
)
def test_sentinel_and_cluster_addresses_name_their_nodes(url, expected):
    address = redisaddress.parse(url)
    assert {name: getattr(address, name) for name in expected} == expected


@pytest.mark.parametrize(
    "url, words",
    [
        ("redis+sentinel://10.0.0.1:26379", "/<service name>/<database>"),
        ("redis+sentinel://10.0.0.1:26379/mymaster/zero", "'zero' is not a number"),
        ("redis+sentinel://10.0.0.1:port/mymaster", "no valid port"),
        ("redis+sentinel:///mymaster/0", "names no host"),
        ("redis+sentinel://10.0.0.1/mymaster/0?password=x", "do not take: password"),
        ("redis+cluster://10.0.0.1:7000/1", "database 0 only"),
        ("redis+cluster://10.0.0.1:7000,/0", "names no host"),
        ("memcached://10.0.0.1", "scheme is memcached"),
    ],
)
def test_a_malformed_address_says_what_is_wrong(url, words):
    with pytest.raises(redisaddress.BadAddress, match=re.escape(words)):
        redisaddress.parse(url)


def test_on_a_cluster_every_key_named_after_the_stream_shares_its_slot():
    """The Lua scripts touch several of them, and a relay reads both streams in one XREAD."""

    def keys():
        return [redisconf.stream_key(), control_key(), ready_key(), published_key(42), card_key()]

    with override_settings(NOTIFICATIONS_REDIS_URL="redis+cluster://10.0.0.1:7000"):
        in_cluster = keys()
    assert in_cluster[0] == "{notifications:events}" and len({key_slot(key.encode()) for key in in_cluster}) == 1
    with override_settings(NOTIFICATIONS_REDIS_URL="redis+sentinel://10.0.0.1/mymaster/0"):
        assert keys() == [
            "notifications:events",
            "notifications:events:control",
            "notifications:events:ready",
            "notifications:events:published:42",
            "notifications:events:site",
        ]


def test_a_django_redis_sentinel_cache_is_one_sentinel_address():
    options = {"SENTINELS": [("10.0.0.1", 26379), ("::1", 5000)], "SENTINEL_KWARGS": {"password": "s&w"}}
    url = redisconf.sentinel_cache_url("redis://:pw@mymaster/3", options)
    assert url == "redis+sentinel://:pw@10.0.0.1:26379,[::1]:5000/mymaster/3?sentinel_password=s%26w"
    assert redisaddress.parse(url).nodes == (("10.0.0.1", 26379), ("::1", 5000))
    assert redisconf.redacted(url) == "redis+sentinel://:***@10.0.0.1:26379,[::1]:5000/mymaster/3?sentinel_password=***"
