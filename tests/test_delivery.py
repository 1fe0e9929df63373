"""
Delivery guarantees under faults (docs/guarantees.md): resume after relay restarts and crashes
and after Redis lost its data, the outbox while Redis is down, graceful shutdown, slow clients,
/healthz. Real relays, a real Redis that the tests stop and start, real clients.

Every test checks the exact sequence a client receives: what it missed, in order, once, then a
control event sent afterwards, which must be the very next frame (nothing extra came before it).
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from websockets.exceptions import ConnectionClosed

from notifications import cursors, notify, outbox, redisconf
from notifications.models import Event
from wsserver import bus

from . import redis_server
from .aio import call, live_servers
from .factories import login, make_user
from .relay import BASE_DIR, database_url

pytestmark = live_servers
needs_own_redis = pytest.mark.skipif(not redis_server.controllable(), reason="REDIS_URL names a Redis these tests cannot restart")




@pytest.fixture
async def redis_restarts():
    """Stop and start the run's Redis from a test; it is running again afterwards whatever happens."""
    yield redis_server
    if not redis_server.controllable():
        await asyncio.to_thread(redis_server.start_redis)


async def notify_titles(user, titles):
    for title in titles:
        await call(notify, user, title)


async def expect_titles(client, titles, timeout=5.0):
    """The next frames are events with exactly these titles, in this order; their cursors."""
    frames = [await client.expect_event(title, timeout=timeout) for title in titles]
    positions = [cursors.position(frame["cursor"]) for frame in frames]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    return [frame["cursor"] for frame in frames]


async def resumed(ws_clients, relay, session, cursor):
    client, _ = await ws_clients.with_cookie(relay, session)
    await client.send({"type": "resume", "cursor": cursor})
    return client


async def published(events, timeout=10.0):
    """The events as stored once each has its stream position (this process, or a relay draining the outbox, published them)."""
    deadline = time.monotonic() + timeout
    while True:
        stored = await call(lambda: list(Event.objects.filter(pk__in=[event.pk for event in events]).order_by("stream_position")))
        if all(each.stream_position for each in stored) or time.monotonic() > deadline:
            assert all(each.stream_position for each in stored), stored
            return stored
        await asyncio.sleep(0.1)


async def seen_one_event_then_left(ws_clients, relay, **user_fields):
    """A user whose client received one event, then disconnected: (user, session, its cursor)."""
    user = await call(make_user, **user_fields)
    session = await call(login, user)
    client, _ = await ws_clients.with_cookie(relay, session)
    await notify_titles(user, ["seen"])
    [cursor] = await expect_titles(client, ["seen"])
    await client.close()
    return user, session, cursor


async def wait_closed(client, timeout=5.0):
    """The connection ends (with or without a close frame); its close code, or None."""
    try:
        while True:
            await asyncio.wait_for(client.connection.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# Resume ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_resume_after_the_relay_restarts(relay_factory, ws_clients, how):
    user = await call(make_user)
    session = await call(login, user)
    relay = relay_factory()
    client, _ = await ws_clients.with_cookie(relay, session)
    await notify_titles(user, ["seen"])
    [cursor] = await expect_titles(client, ["seen"])

    if how == "SIGTERM":
        relay.process.send_signal(signal.SIGTERM)
        assert await wait_closed(client) == 1001
    else:
        relay.process.kill()
        assert await wait_closed(client) is None  # no close frame: the process died
    relay.process.wait(10)

    missed = [f"missed-{n}" for n in range(5)]
    await notify_titles(user, missed)
    restarted = relay_factory(port=relay.port)
    client = await resumed(ws_clients, restarted, session, cursor)
    await expect_titles(client, missed)
    await notify_titles(user, ["live"])
    await expect_titles(client, ["live"])


async def test_resume_on_another_relay_with_a_subscription(relay, relay_factory, ws_clients):
    """Subscribe, then resume: what was missed on the inbox and on the model topic, in order."""
    user, session, cursor = await seen_one_event_then_left(ws_clients, relay, perms=["auth.view_group"])

    from django.contrib.auth.models import Group

    await call(notify, user, "missed-inbox")
    group = await call(Group.objects.create, name=f"g-{user.pk}")
    await call(notify, user, "missed-inbox-2", target=group)

    other = relay_factory()
    client, _ = await ws_clients.with_cookie(other, session)
    await client.send({"type": "subscribe", "topics": ["model:auth.group"], "ref": 1})
    await client.send({"type": "resume", "cursor": cursor})
    await client.expect("subscribed")
    await expect_titles(client, ["missed-inbox", "missed-inbox-2"])


async def test_a_ticket_sent_on_a_socket_the_cookie_authenticated_leaves_the_resume_its_place(relay, ws_clients):
    """
    The widget sends its ticket first whatever the cookie did; answered "Already authenticated."
    that `auth` must not start live delivery, or the `resume` after it would only get `resync`.
    """
    user, session, cursor = await seen_one_event_then_left(ws_clients, relay)
    await call(notify, user, "missed")
    client, _ = await ws_clients.with_cookie(relay, session)
    await client.send({"type": "auth", "token": "not-needed"})
    assert (await client.expect("error"))["message"] == "Already authenticated."
    await call(notify, user, "live")  # held until the resume
    await client.send({"type": "resume", "cursor": cursor})
    await expect_titles(client, ["missed", "live"])


@needs_own_redis
async def test_resume_after_redis_lost_all_its_data(relay, ws_clients, redis_restarts):
    """The part of the range Redis no longer has is replayed from the database, in order."""
    user, session, cursor = await seen_one_event_then_left(ws_clients, relay)
    await notify_titles(user, ["lost-1", "lost-2"])  # in Redis, then lost with it

    await asyncio.to_thread(redis_restarts.stop_redis, True)
    await asyncio.to_thread(redis_restarts.start_redis)
    await notify_titles(user, ["after-1", "after-2"])  # a new, empty stream

    client = await resumed(ws_clients, relay, session, cursor)
    await expect_titles(client, ["lost-1", "lost-2", "after-1", "after-2"])
    await notify_titles(user, ["live"])
    await expect_titles(client, ["live"])


@needs_own_redis
async def test_resume_takes_from_the_new_stream_what_the_database_has_no_position_for_yet(relay, ws_clients, redis_restarts):
    """
    After Redis lost its data, the lost part of the range comes from the database and the rest
    from the new stream, which also holds an entry whose position is not on its Event row yet
    (its publisher is between the XADD and the UPDATE, as when a relay drains a large outbox).
    """
    user, session, cursor = await seen_one_event_then_left(ws_clients, relay)
    watcher, _ = await ws_clients.with_cookie(relay, session)
    await notify_titles(user, ["lost"])
    await expect_titles(watcher, ["lost"])
    await asyncio.to_thread(redis_restarts.stop_redis, True)
    await asyncio.to_thread(redis_restarts.start_redis)
    await notify_titles(user, ["after"])
    event = await call(notify, user, "position not recorded yet")
    await call(lambda: Event.objects.filter(pk=event.pk).update(stream_position=None))
    # The relay has read them: the range to replay ends with them.
    await expect_titles(watcher, ["after", "position not recorded yet"], timeout=10.0)

    client = await resumed(ws_clients, relay, session, cursor)
    await expect_titles(client, ["lost", "after", "position not recorded yet"])
    await notify_titles(user, ["live"])
    await expect_titles(client, ["live"])


@needs_own_redis
async def test_a_relay_that_starts_on_an_empty_stream_replays_what_redis_lost(relay_factory, ws_clients, redis_restarts):
    """Every relay and Redis's data gone, nothing published since: resume still finds the lost events."""
    relay = relay_factory()
    user, session, cursor = await seen_one_event_then_left(ws_clients, relay)
    await notify_titles(user, ["lost-1", "lost-2"])
    relay.process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(relay.process.wait, 10)
    await asyncio.to_thread(redis_restarts.stop_redis, True)
    await asyncio.to_thread(redis_restarts.start_redis)

    restarted = relay_factory(port=relay.port)
    client = await resumed(ws_clients, restarted, session, cursor)
    await expect_titles(client, ["lost-1", "lost-2"])
    await notify_titles(user, ["live"])
    await expect_titles(client, ["live"])


@needs_own_redis
@pytest.mark.parametrize("single_connection", [True, False], ids=["reader's client", "a pooled client"])
async def test_only_the_readers_redis_client_reports_a_restart_it_was_not_watching(redis_restarts, single_connection):
    """
    Redis restarts (without its data) while the reader is between two reads, busy delivering:
    its client must fail the next read, so that the reader looks for what the old stream lost.
    A pooled client reconnects without a word, which is why the reader does not use one.
    """
    client = bus.connect(single_connection=single_connection)
    try:
        await client.ping()
        await asyncio.to_thread(redis_restarts.stop_redis, True)
        await asyncio.to_thread(redis_restarts.start_redis)
        if single_connection:
            with pytest.raises(bus.REDIS_DOWN):
                await client.xread({"any-stream": "0-0"}, count=1)
        assert await client.xread({"any-stream": "0-0"}, count=1) == []  # (then) on the new server
    finally:
        await client.aclose()


async def test_a_cursor_older_than_the_replay_window_gets_resync(relay, ws_clients):
    """(For a user who joined before the window: what is older than their joining is not theirs to miss.)"""
    user = await call(make_user, joined=timezone.now() - timedelta(days=2))
    client = await resumed(ws_clients, relay, await call(login, user), "1-0")  # 1970
    await client.expect("resync")
    await notify_titles(user, ["live"])
    await expect_titles(client, ["live"])


async def test_a_malformed_cursor_is_a_bad_request(relay, ws_clients):
    user = await call(make_user)
    client = await resumed(ws_clients, relay, await call(login, user), "yesterday")
    error = await client.expect("error")
    assert error["code"] == "bad_request" and "cursor" in error["message"]


async def test_events_during_resume_come_after_the_replay_once(relay, ws_clients):
    """Live events published while a replay runs are held, then sent after it, none twice."""
    user, session, cursor = await seen_one_event_then_left(ws_clients, relay)
    missed = [f"missed-{n}" for n in range(30)]
    await notify_titles(user, missed)

    client, _ = await ws_clients.with_cookie(relay, session)
    during = asyncio.create_task(notify_titles(user, [f"during-{n}" for n in range(10)]))
    await client.send({"type": "resume", "cursor": cursor})
    await during
    await expect_titles(client, missed + [f"during-{n}" for n in range(10)])
    await notify_titles(user, ["live"])
    await expect_titles(client, ["live"])


# Outbox ------------------------------------------------------------------------------------------


@needs_own_redis
async def test_a_process_behind_does_not_query_the_outbox_with_every_commit(stream, redis_restarts):
    """
    Once a publication failed, later commits go through the outbox, but while Redis is down they
    cost a ping at most once a second, not a query of the outbox each; once it is back, the next
    commit publishes everything, in commit order.
    """
    user = await call(make_user)
    await asyncio.to_thread(redis_restarts.stop_redis)

    def notify_during_the_outage():
        with CaptureQueriesContext(connections["default"]) as queries:
            for n in range(20):
                notify(user, f"during-{n}")
        return [query["sql"] for query in queries if "stream_position" in query["sql"] and "IS NULL" in query["sql"]]

    assert await call(notify_during_the_outage) == []
    await asyncio.to_thread(redis_restarts.start_redis)
    await asyncio.sleep(outbox.RETRY_INTERVAL)
    await call(notify, user, "after")
    titles = [event["title"] for event in await asyncio.to_thread(stream.new_events)]
    assert titles == [f"during-{n}" for n in range(20)] + ["after"]


@needs_own_redis
async def test_events_committed_while_redis_is_down_arrive_once_when_it_is_back(relay, relay_factory, ws_clients, redis_restarts):
    user = await call(make_user)
    session = await call(login, user)
    second = relay_factory()
    clients = [(await ws_clients.with_cookie(each, session))[0] for each in (relay, second)]

    await asyncio.to_thread(redis_restarts.stop_redis)
    status, health = await asyncio.to_thread(get_json, second.ops_url("/healthz"))
    deadline = time.monotonic() + 10
    while status == 200 and time.monotonic() < deadline:  # until the relay notices
        await asyncio.sleep(0.2)
        status, health = await asyncio.to_thread(get_json, second.ops_url("/healthz"))
    assert (status, health["redis"]) == (503, "down") and "Redis" in health["problems"]["redis"]
    assert await asyncio.to_thread(get_json, f"http://127.0.0.1:{second.port}/healthz") == (503, {"status": "unavailable"})

    # A request that notifies succeeds, and so does another Django process.
    response = await call(_post_demo_form, user, "from-a-request")
    assert response.status_code == 201
    await asyncio.to_thread(_notify_from_another_process, user.pk, "from-another-process")
    waiting = await call(lambda: sorted(Event.objects.filter(stream_position__isnull=True).values_list("title", flat=True)))
    assert waiting == ["from-a-request", "from-another-process"]

    await asyncio.to_thread(redis_restarts.start_redis)
    back = time.monotonic()
    for client in clients:
        frames = [await client.expect_event(timeout=5.0) for _ in range(2)]
        assert sorted(frame["event"]["title"] for frame in frames) == ["from-a-request", "from-another-process"]
    assert time.monotonic() - back < 5.0
    await notify_titles(user, ["live"])
    for client in clients:
        await expect_titles(client, ["live"])
    # "live" may have waited in the outbox (this process retries Redis once a second): a relay
    # that published it records its position just after its clients got it.
    deadline = time.monotonic() + 5
    while await call(lambda: Event.objects.filter(stream_position__isnull=True).count()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await call(lambda: Event.objects.filter(stream_position__isnull=True).count()) == 0
    status, health = await asyncio.to_thread(get_json, second.ops_url("/healthz"))
    assert (status, health["redis"]) == (200, "up") and health["redis_reconnects"] >= 1
    assert "Lost Redis" in second.output() and "Redis is back" in second.output()


@needs_own_redis
async def test_a_process_that_could_not_publish_publishes_its_waiting_events_first(relay, ws_clients, redis_restarts):
    """
    Committed while Redis was down, then one more right after it came back empty: the newer
    commit publishes the waiting ones first (before any relay's outbox drain could), so the
    client sees them in commit order.
    """
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await asyncio.to_thread(redis_restarts.stop_redis, True)
    during = [f"during the outage {n}" for n in range(5)]
    await notify_titles(user, during)  # in the outbox: this process is behind
    await asyncio.to_thread(redis_restarts.start_redis)
    await notify_titles(user, ["right after"])
    await expect_titles(client, [*during, "right after"], timeout=15.0)


@needs_own_redis
async def test_after_redis_lost_its_data_another_process_publishes_the_outbox_first(relay, ws_clients, redis_restarts):
    """
    The events of a process that is idle since the outage wait in the outbox; another process
    commits the moment Redis is back: the stream is not ready (Redis lost its data), so that
    process publishes the outbox, oldest first, before its own event.
    """
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await asyncio.to_thread(redis_restarts.stop_redis, True)
    during = [f"during the outage {n}" for n in range(5)]
    await notify_titles(user, during)
    other = asyncio.create_task(asyncio.to_thread(_notify_from_another_process, user.pk, "from another process", True))
    await asyncio.sleep(3.0)  # it has started and waits for Redis
    await asyncio.to_thread(redis_restarts.start_redis)
    await other
    await expect_titles(client, [*during, "from another process"], timeout=15.0)


def _post_demo_form(user, title):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.post("/", {"title": title, "body": ""}, HTTP_ACCEPT="application/json")


def _notify_from_another_process(user_pk, title, once_redis_answers=False):
    """notify() from a Django process of its own; it can wait for Redis to answer first, and then notify at once."""
    wait = (
        "import time; from notifications import redisconf\n"
        "while True:\n"
        "    try:\n"
        "        redisconf.connection().ping(); break\n"
        "    except Exception:\n"
        "        time.sleep(0.01)\n"
    )
    code = (wait if once_redis_answers else "") + (
        "from django.contrib.auth import get_user_model; from notifications import notify; "
        f"notify(get_user_model().objects.get(pk={user_pk}), {title!r})"
    )
    env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=settings.CACHES["default"]["LOCATION"])
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Shutdown and slow clients -----------------------------------------------------------------------


async def test_sigterm_closes_every_connection_with_1001_and_exits_within_5_seconds(relay_factory, ws_clients):
    relay = relay_factory()
    sessions = [await call(login, await call(make_user)) for _ in range(3)]
    clients = [(await ws_clients.with_cookie(relay, session))[0] for session in sessions]
    started = time.monotonic()
    relay.process.send_signal(signal.SIGTERM)
    assert [await wait_closed(client) for client in clients] == [1001, 1001, 1001]
    await asyncio.to_thread(relay.process.wait, 5)
    assert time.monotonic() - started < 5.0
    assert relay.process.returncode == 0


async def test_a_client_that_stops_reading_is_closed_and_others_are_not_delayed(relay, ws_clients):
    user = await call(make_user)
    session = await call(login, user)
    slow, _ = await ws_clients.with_cookie(relay, session)
    fast, _ = await ws_clients.with_cookie(relay, session)
    slow.connection.transport.pause_reading()  # stops reading: the relay's buffer for it grows
    body = "x" * 32_000
    titles = [f"big-{n}" for n in range(200)]  # ~6.4 MB, well past the 1 MiB limit and socket buffers
    started = time.monotonic()
    for title in titles:
        await call(notify, user, title, body=body)
        frame = await fast.expect_event(title, timeout=5.0)  # the fast one keeps up throughout
    assert frame and time.monotonic() - started < 60
    deadline = time.monotonic() + 10
    while "too slow" not in relay.output() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert "too slow" in relay.output()
    slow.connection.transport.resume_reading()
    assert await wait_closed(slow, timeout=10) in (1013, None)  # 1013 when its close frame got through


async def test_healthz_says_up_or_down_to_the_public_and_more_on_the_operations_address(relay):
    assert await asyncio.to_thread(get_json, f"http://127.0.0.1:{relay.port}/healthz") == (200, {"status": "ok"})
    status, health = await asyncio.to_thread(get_json, relay.ops_url("/healthz"))
    assert status == 200
    assert health["status"] == "ok" and health["redis"] == "up" and health["problems"] == {}
    assert isinstance(health["connections"], int) and cursors.position(health["cursor"]) >= 0


async def test_metrics_are_off_the_public_port_when_they_have_an_address_of_their_own(relay):
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{relay.port}/metrics", timeout=5)
    assert refused.value.code in (400, 404)  # not served: a plain HTTP GET is no WebSocket handshake
    with await asyncio.to_thread(urllib.request.urlopen, relay.ops_url("/metrics"), timeout=5) as response:
        assert b"wsserver_connections" in response.read()


# PostgreSQL: transactions commit out of id order ---------------------------------------------------

on_postgresql = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="only PostgreSQL commits concurrent transactions out of id order here",
)


@on_postgresql
async def test_an_event_that_commits_after_a_newer_one_is_not_skipped(relay, ws_clients):
    """
    Event A takes an id, then event B takes a higher one and commits first. Cursors follow commit
    order, not ids: a client resuming from B's cursor still gets A.
    """
    import threading

    from django.db import transaction

    user = await call(make_user)
    session = await call(login, user)
    live, _ = await ws_clients.with_cookie(relay, session)
    a_has_its_id, b_committed = threading.Event(), threading.Event()

    def commit_a_late():
        with transaction.atomic():
            notify(user, "A: lower id, commits last")
            a_has_its_id.set()
            assert b_committed.wait(10)
        connections.close_all()

    def commit_b_first():
        assert a_has_its_id.wait(10)
        notify(user, "B: higher id, commits first")
        b_committed.set()
        connections.close_all()

    await asyncio.gather(
        sync_to_async(commit_a_late, thread_sensitive=False)(),
        sync_to_async(commit_b_first, thread_sensitive=False)(),
    )
    a, b = await call(lambda: list(Event.objects.filter(title__in=["A: lower id, commits last", "B: higher id, commits first"]).order_by("pk")))
    assert a.pk < b.pk and a.stream_position > b.stream_position
    b_cursor, _ = await expect_titles(live, ["B: higher id, commits first", "A: lower id, commits last"])

    resumed_client = await resumed(ws_clients, relay, session, b_cursor)
    await expect_titles(resumed_client, ["A: lower id, commits last"])


@needs_own_redis
async def test_the_relay_recovers_entries_redis_lost_before_it_read_them(relay, ws_clients, redis_restarts):
    """
    An event published just before Redis died, not yet read by the relay: the database has its
    position, the new stream does not. The relay's reader finds the gap and delivers it.
    """
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await notify_titles(user, ["seen"])
    [cursor] = await expect_titles(client, ["seen"])
    await asyncio.to_thread(redis_restarts.stop_redis, True)
    event = await call(notify, user, "published, then lost with Redis")  # Redis down: in the outbox
    await call(lambda: Event.objects.filter(pk=event.pk).update(stream_position=cursors.position(cursor) + 1))
    await asyncio.to_thread(redis_restarts.start_redis)
    await expect_titles(client, ["published, then lost with Redis"])
    await notify_titles(user, ["live"])
    await expect_titles(client, ["live"])


@needs_own_redis
async def test_entries_redis_lost_after_its_snapshot_are_put_back_in_their_place(relay_factory, ws_clients, redis_restarts):
    """
    Redis killed and started again from a snapshot older than its newest entries, as a replica
    that a failover promotes may lack the last ones: it is another server, so the stream is not
    ready, and before anything new is added the lost entries are put back under their own IDs.
    A relay that never read them delivers them, in their place, before what comes next.
    """
    relay = relay_factory()
    user, session, cursor = await seen_one_event_then_left(ws_clients, relay)
    await call(lambda: redisconf.connection().save())
    lost = await published([await call(notify, user, title) for title in ("lost-1", "lost-2")])
    await asyncio.to_thread(relay.stop)
    await asyncio.to_thread(redis_restarts.kill_redis)
    await asyncio.to_thread(redis_restarts.start_redis)  # its stream ends with "seen"

    restarted = relay_factory(port=relay.port)
    client = await resumed(ws_clients, restarted, session, cursor)
    assert await expect_titles(client, ["lost-1", "lost-2"], timeout=10.0) == [cursors.cursor(each.stream_position) for each in lost]
    await notify_titles(user, ["after"])
    await expect_titles(client, ["after"])


async def test_a_publisher_that_lost_redis_answer_records_the_position_all_the_same(stream):
    """
    Redis added the entry but its answer never came (it failed over, the connection broke): the
    event waits in the outbox, and publishing it again records the position it has, instead of
    adding it twice (an hour later, once its once-only key expired).
    """
    event = await call(notify, await call(make_user), "added, the answer lost")
    await call(lambda: Event.objects.filter(pk=event.pk).update(stream_position=None))
    assert await call(outbox.catch_up, card=False) == 0
    await call(event.refresh_from_db)
    assert [(cursors.cursor(event.stream_position), event.title)] == [(entry_id, each["title"]) for entry_id, _, each in await asyncio.to_thread(stream.new_entries)]
