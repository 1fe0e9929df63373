"""
Redis Sentinel and Redis Cluster (tests/redis_deployments.py): publishing (notify(), announce(),
the outbox, tickets, control messages) and relays work through a primary that Sentinel manages
and through a Cluster of three primaries, and a failover that loses the newest entries (as
asynchronous replication may) loses no event: a client connected throughout, and one resuming
on a relay started after the failover, each receive every event, in order, once.

Each deployment serves the tests of this module in turn, the failover last.
"""

import asyncio
import json

import pytest
from django.test import override_settings

from notifications import announce, cursors, notify, redisaddress, redisconf
from notifications.models import Event
from wsserver import bus

from . import redis_deployments
from .aio import call, live_servers
from .factories import fetch_ticket, login, logout, make_user
from .test_delivery import expect_titles, notify_titles, published, resumed

pytestmark = live_servers
DEPLOYMENTS = {"sentinel": redis_deployments.SentinelDeployment, "cluster": redis_deployments.ClusterDeployment}
FAILOVER_WAIT = 20.0  # seconds: the failover, then the catch-up, on a busy 2-core machine


@pytest.fixture(scope="module", params=list(DEPLOYMENTS))
def deployment(request):
    redis_deployments.require_binaries("The Sentinel and Cluster tests")
    started = DEPLOYMENTS[request.param]()
    yield started
    started.stop()


@pytest.fixture
def through(deployment, relay_factory):
    """This process publishes through the deployment; start_relay() starts relays that read it."""
    with override_settings(NOTIFICATIONS_REDIS_URL=deployment.url):
        yield lambda: relay_factory(extra_env={"NOTIFICATIONS_REDIS_URL": deployment.url})


async def test_events_tickets_and_control_messages_travel_through_it(through, ws_clients):
    relay = await call(through)
    user = await call(make_user)
    session = await call(login, user)
    client, _ = await ws_clients.with_ticket(relay, await call(fetch_ticket, session))
    await call(notify, user, "to one user")
    await call(announce, "to everyone")
    await expect_titles(client, ["to one user", "to everyone"])
    await call(logout, session)  # a control message: the relay re-checks the session
    await client.expect_close(4003)


@pytest.mark.parametrize("deployment", ["sentinel"], indirect=True)
async def test_events_share_a_django_redis_sentinel_cache(deployment, ws_clients):
    """The site's cache is django-redis's Sentinel client: events travel through its connections, and the relay's client follows its SENTINELS."""
    cache = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://:{redis_deployments.PASSWORD}@{redis_deployments.SERVICE}/0",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "SENTINELS": [("127.0.0.1", sentinel.port) for sentinel in deployment.sentinels],
            "SENTINEL_KWARGS": {"password": redis_deployments.SENTINEL_PASSWORD},
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
    }
    with override_settings(CACHES={"default": cache}, DJANGO_REDIS_CONNECTION_FACTORY="django_redis.pool.SentinelConnectionFactory"):
        assert await call(redisconf.url) == deployment.url
        event = await call(notify, await call(make_user), "through the cache's connections")
        reader = bus.connect(single_connection=True)
        try:
            [[_, [(entry_id, fields)]]] = await reader.xread({redisconf.stream_key(): cursors.cursor(event.stream_position - 1)}, count=1)
        finally:
            await reader.aclose()
    assert (entry_id, json.loads(fields["event"])["title"]) == (cursors.cursor(event.stream_position), "through the cache's connections")


async def test_a_failover_that_loses_the_newest_entries_loses_no_event(deployment, through, ws_clients):
    user = await call(make_user)
    session = await call(login, user)
    first = await call(through)
    watching, _ = await ws_clients.with_cookie(first, session)
    await notify_titles(user, ["before"])
    [before] = await expect_titles(watching, ["before"])

    key = await call(redisconf.stream_key)
    primary = await asyncio.to_thread(deployment.cut_off_replica, key)
    await notify_titles(user, ["lost-1", "lost-2"])  # on the primary only
    lost = await published(await call(lambda: list(Event.objects.filter(title__startswith="lost-"))))
    await expect_titles(watching, ["lost-1", "lost-2"])
    replica = await asyncio.to_thread(deployment.kill, primary)
    await notify_titles(user, ["during-1", "during-2"])  # no primary: they wait in the outbox
    await asyncio.to_thread(deployment.wait_for_promotion, key, replica)
    # The relay's outbox drain publishes them, after putting the lost entries back.
    await expect_titles(watching, ["during-1", "during-2"], timeout=FAILOVER_WAIT)
    await notify_titles(user, ["after"])
    await expect_titles(watching, ["after"])

    # The lost entries are back in the new primary's stream, under their own IDs.
    stream = redisaddress.client(deployment.url, decode_responses=True)
    entries = await asyncio.to_thread(stream.xrange, key, min=f"({before}")
    assert [entry_id for entry_id, _ in entries[:2]] == [cursors.cursor(event.stream_position) for event in lost]
    # A relay that never saw them replays them, in their place.
    second = await call(through)
    resuming = await resumed(ws_clients, second, session, before)
    await expect_titles(resuming, ["lost-1", "lost-2", "during-1", "during-2", "after"])
    await notify_titles(user, ["live"])
    for client in (watching, resuming):
        await expect_titles(client, ["live"])
    assert "Lost Redis" in first.output()
    assert all(password not in first.output() for password in (redis_deployments.PASSWORD, redis_deployments.SENTINEL_PASSWORD))

