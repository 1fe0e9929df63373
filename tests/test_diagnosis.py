"""
A relay configured unlike its site says so: each misconfiguration is an ERROR line naming the
setting to fix, the detailed /healthz names it, the public /healthz and every handshake answer
503 (with Retry-After) while it holds; a refused socket's close reason and log line say which
check failed, without a secret. Real relays, a second real Redis, real SQLite databases.
"""

import asyncio
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus

from notifications import deployment, devredis, notify, redisconf
from notifications.sessions import Refusal
from wsserver import health

from .aio import call, live_servers
from .factories import login, make_user
from .relay import BASE_DIR, free_port, server_env

pytestmark = live_servers

SETTLE = 15.0  # seconds for a relay to notice (it examines itself every 2 s while something is wrong)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


async def until(condition, what, timeout=SETTLE):
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            pytest.fail(f"Not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


def problems(relay):
    import json

    status, body, _ = get(relay.ops_url("/healthz"))
    return status, json.loads(body)["problems"]


async def assert_refuses_everyone(relay, ws_clients, check, words, timeout=SETTLE):
    """The problem is named in the log and on the detailed /healthz; the public one and handshakes say 503."""
    await until(lambda: check in problems(relay)[1], f"/healthz naming {check}", timeout)
    status, named = await asyncio.to_thread(problems, relay)
    assert status == 503 and re.search(words, named[check]), named
    errors = [line for line in relay.output().splitlines() if " ERROR " in line and re.search(words, line)]
    assert len(errors) == 1, relay.output()  # once, not once per examination
    status, body, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{relay.port}/healthz")
    assert (status, body.strip()) == (503, '{"status": "unavailable"}')
    session = await call(login, await call(make_user))
    with pytest.raises(InvalidStatus) as refused:
        await ws_clients.open(relay, cookie=session.cookie)
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "5"


async def site_leaves_its_card():
    """What any Django process of the site does when it publishes (at most once a minute)."""
    deployment._written["at"] = float("-inf")
    await call(notify, await call(make_user), "the site publishes")


def migrate(database_url):
    env = server_env(extra_env={"DATABASE_URL": database_url})
    subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--verbosity", "0"],
        cwd=BASE_DIR, env=env, check=True, timeout=120, stdin=subprocess.DEVNULL,
    )


async def test_a_relay_with_another_secret_key_says_so(relay_factory, ws_clients):
    await site_leaves_its_card()
    relay = await call(relay_factory, extra_env={"DJANGO_SECRET_KEY": "not-the-site-s-secret-key"})
    await assert_refuses_everyone(relay, ws_clients, "secret_key", r"SECRET_KEY is not the site's.*DJANGO_SECRET_KEY")
    assert "not-the-site-s-secret-key" not in relay.output()


async def test_a_relay_with_another_database_says_so(relay_factory, ws_clients, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    await asyncio.to_thread(migrate, other)
    await site_leaves_its_card()
    relay = await call(relay_factory, extra_env={"DATABASE_URL": other})
    await assert_refuses_everyone(relay, ws_clients, "site_database", r"another database than the relay's .*other\.sqlite3.*DATABASES")


async def test_a_relay_on_an_unmigrated_database_says_so_until_it_is_migrated(relay_factory, ws_clients, tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    # A stream of its own: no site publishes there, only the migrations are in question.
    relay = await call(relay_factory, extra_env={"DATABASE_URL": empty, "NOTIFICATIONS_STREAM_KEY": "unmigrated:events"})
    await assert_refuses_everyone(relay, ws_clients, "migrations", r"migration\(s\) not applied .*manage.py migrate")
    await asyncio.to_thread(migrate, empty)
    await until(lambda: get(f"http://127.0.0.1:{relay.port}/healthz")[0] == 200, "/healthz 200 once migrated")
    assert "Migrations are applied" in relay.output()


async def test_a_relay_reading_another_redis_says_so(relay_factory, ws_clients, tmp_path):
    other = await asyncio.to_thread(devredis.start, tmp_path / "other-redis")
    try:
        relay = await call(relay_factory, extra_env={"REDIS_URL": devredis.url(tmp_path / "other-redis")})
        await until(lambda: get(relay.ops_url("/healthz"))[0] == 200, "the relay up")
        await call(notify, await call(make_user), "the site publishes")  # to the site's Redis
        await assert_refuses_everyone(
            relay, ws_clients, "site_redis", r"not in this relay's Redis stream.*CACHES",
            timeout=health.INTERVAL + health.UNSEEN_GRACE + SETTLE,
        )
        await asyncio.to_thread(relay.stop)
    finally:
        await asyncio.to_thread(devredis.stop, other)


async def test_a_redis_that_lost_its_data_is_no_other_redis(relay, ws_clients):
    """
    Flushed (cache.clear() on a shared Redis), it holds neither the site's card nor the events
    published before: the relay, which saw them, raises no alarm, and what the site publishes
    next reaches it.
    """
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await call(notify, user, "before")
    await client.expect_event("before")
    await call(lambda: redisconf.connection().flushdb())
    await asyncio.sleep(health.INTERVAL + 1)  # one examination after the flush, at least
    status, named = await asyncio.to_thread(problems, relay)
    assert (status, named) == (200, {}), relay.output()
    await call(notify, user, "after")
    await client.expect_event("after")


async def test_a_relay_that_cannot_reach_redis_says_so_and_where(relay_factory, ws_clients):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    relay = await call(relay_factory, extra_env={"REDIS_URL": closed})
    await until(lambda: "redis" in problems(relay)[1], "/healthz naming Redis")
    [error] = [line for line in relay.output().splitlines() if " ERROR " in line]
    assert f"Lost Redis at {closed}" in error and "CACHES['default']['LOCATION']" in error
    status, body, headers = await asyncio.to_thread(get, f"http://127.0.0.1:{relay.port}/healthz")
    assert status == 503 and headers["Retry-After"] == "5"
    session = await call(login, await call(make_user))
    with pytest.raises(InvalidStatus) as refused:  # after waiting a little for Redis: it is starting
        await ws_clients.open(relay, cookie=session.cookie)
    assert refused.value.response.status_code == 503


# Refused sockets say why ------------------------------------------------------------------------


def expire(session):
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    Session.objects.filter(session_key=session.cookie).update(expire_date=timezone.now())


def deactivate(session):
    session.user.is_active = False
    session.user.save()


@pytest.mark.parametrize(
    "spoil, reason",
    [
        (lambda session: session.client.logout(), Refusal.NO_SESSION),
        (expire, Refusal.EXPIRED),
        (deactivate, Refusal.INACTIVE),
    ],
    ids=["logged out", "expired", "inactive"],
)
async def test_a_refused_cookie_says_why_in_its_close_reason_and_the_log(relay, ws_clients, spoil, reason):
    session = await call(login, await call(make_user))
    cookie = session.cookie
    await call(spoil, session)
    client = await ws_clients.open(relay, cookie=cookie)
    await client.send({"type": "ping"})  # not a ticket
    closed = await client.expect_close(4001)
    assert closed.reason == f"Authentication failed: session cookie: {reason}; no ticket as first message within 10 s."
    await until(lambda: f"session cookie: {reason}" in relay.output(), "the refusal in the log", timeout=5)
    assert cookie not in relay.output()


async def test_a_refused_ticket_says_why(relay, ws_clients):
    client = await ws_clients.open(relay, origin=None)
    await client.send({"type": "auth", "token": "not.a-ticket"})
    closed = await client.expect_close(4001)
    assert closed.reason == "Authentication failed: no session cookie; ticket: ticket signature mismatch (is SECRET_KEY the site's?)."
