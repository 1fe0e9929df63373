"""
Outages: Redis or the database unreachable under running servers. The HTTP endpoints answer
503 in JSON with Retry-After, never an HTML 500 page, and answer again by themselves once the
backend is back; a relay whose database is down refuses handshakes with 503 and Retry-After,
says so once in its log (not a traceback per handshake), reports it on /healthz, and recovers.

The database outages stop and restart a real PostgreSQL (tests/pg_server.py) under real
runserver and runwsserver processes, which use it instead of the test database: the users and
sessions they see are made there, while it is up.
"""

import asyncio
import json
import logging
import re
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager, contextmanager

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils.crypto import get_random_string
from websockets.exceptions import InvalidStatus

from .aio import live_servers
from .factories import make_user
from .pg_server import login
from .relay import DjangoServer, free_port, start_server

pytestmark = live_servers

TICKET = "/notifications/ws-ticket/"
LIST = "/notifications/api/notifications/"
COUNT = "/notifications/api/unread-count/"
READ_ALL = "/notifications/api/read-all/"
WAIT = 15.0  # seconds: a generous bound for what the servers do, on a busy 2-core machine

# How a relay's log words the database going away and coming back: a log record naming the
# database with one of these words. A record saying both ("unreachable ... until it is back")
# reports the outage.
DATABASE_DOWN = re.compile(r"database\b.*\b(unreachable|unavailable|cannot reach|down|lost)\b|cannot reach\b.*\bdatabase", re.I)
DATABASE_BACK = re.compile(r"database\b.*\b(is back|back up|recovered|reachable again|available again|up again)\b", re.I)
RECORD_START = re.compile(r"\n(?=\[)")  # each record starts with "[<time>]"; a message may span lines
# The relay may notice the database is back only at its next periodic check (every few seconds).
RECOVERY_WAIT = 30.0
WELCOMED_AGAIN = "a cookie handshake welcomed once the database is back"


def endpoints(event_id):
    """Every JSON endpoint, as (method, path): each needs the database, the ticket also Redis."""
    return [
        ("GET", TICKET),
        ("GET", LIST),
        ("GET", COUNT),
        ("POST", f"/notifications/api/notifications/{event_id}/read/"),
        ("POST", READ_ALL),
    ]


def assert_unavailable(status, headers, body):
    """The answer while a backend is down: 503, JSON, and when to try again."""
    assert status == 503, (status, body)
    assert headers["Content-Type"] == "application/json", headers["Content-Type"]
    assert body["error"] == "unavailable" and body["message"], body
    assert 1 <= int(headers["Retry-After"]) <= 30, headers["Retry-After"]


# Redis unreachable ----------------------------------------------------------------------------


@contextmanager
def redis_unreachable():
    """The app's Redis at a port where nothing listens, failing fast."""
    cache = settings.CACHES["default"]
    options = {**cache.get("OPTIONS", {}), "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5}
    closed = {**cache, "LOCATION": f"redis://127.0.0.1:{free_port()}/0", "OPTIONS": options}
    with override_settings(CACHES={**settings.CACHES, "default": closed}):
        yield


@pytest.fixture
def app_log(caplog):
    """caplog, seeing the app's records too (its logger does not propagate to the root)."""
    logger = logging.getLogger("notifications")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_the_ticket_endpoint_answers_503_json_while_redis_is_unreachable(app_log):
    client = Client()
    client.force_login(make_user())
    with redis_unreachable():
        response = client.get(TICKET)
    assert_unavailable(response.status_code, response.headers, response.json())
    warnings = [record for record in app_log.records if record.name == "notifications.views"]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING", app_log.text
    assert warnings[0].getMessage().startswith("Redis is unreachable") and warnings[0].exc_info is None
    assert client.get(TICKET).status_code == 200  # and once it is back, a ticket


# The database down under runserver -------------------------------------------------------------


class Visitor:
    """A logged-in browser as the endpoints see it: the session cookie, and a CSRF token for POSTs."""

    def __init__(self, base_url, session_cookie):
        self.base_url = base_url
        self.csrf_token = get_random_string(32)
        self.cookie = f"{settings.SESSION_COOKIE_NAME}={session_cookie}; {settings.CSRF_COOKIE_NAME}={self.csrf_token}"

    def call(self, method, path):
        """(status, headers, JSON body) of one request."""
        headers = {"Cookie": self.cookie, "X-CSRFToken": self.csrf_token, "Accept": "application/json"}
        request = urllib.request.Request(self.base_url + path, method=method, headers=headers, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, headers, content = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, content = error.code, error.headers, error.read()
        try:
            return status, headers, json.loads(content)
        except ValueError:
            pytest.fail(f"{method} {path} answered {status} with no JSON: {content[:300]!r}")


@pytest.fixture
def runserver(servers_on_postgres, relay_log_dir):
    """Django's runserver on the throwaway PostgreSQL; stopped after the test."""
    server = start_server(DjangoServer, "runserver", relay_log_dir)
    yield server
    server.stop()


def test_the_endpoints_answer_503_json_while_the_database_is_down_and_200_once_it_is_back(postgres, runserver):
    alice = login(postgres, "outage", titles=["one", "two"])
    visitor = Visitor(runserver.url, alice.cookie)
    requests = endpoints(alice.event_ids[0])
    assert [visitor.call(*request)[0] for request in requests] == [200] * len(requests)
    logged_before = runserver.log_size()

    with postgres.down():
        for request in requests:
            assert_unavailable(*visitor.call(*request))

    assert [visitor.call(*request)[0] for request in requests] == [200] * len(requests)
    log = runserver.output(logged_before)
    assert "Traceback" not in log, log
    warnings = [line for line in log.splitlines() if "The database is unreachable" in line]
    assert len(warnings) == len(requests) and all("WARNING" in line for line in warnings), log


# The relay's database down -----------------------------------------------------------------------
# The relay's side of an outage (wsserver/): a handshake it cannot identify for want of its
# database is refused with 503 and Retry-After, /healthz says 503, and its log says once that the
# database is unreachable (DATABASE_DOWN) and once that it is back (DATABASE_BACK), without a
# traceback.


@asynccontextmanager
async def database_down(server):
    """server.down() from async code: the event loop runs on while PostgreSQL stops and starts."""
    down = server.down()
    await asyncio.to_thread(down.__enter__)
    try:
        yield
    finally:
        await asyncio.to_thread(down.__exit__, None, None, None)


async def wait_for(check, what, timeout=WAIT):
    """Await `check()` until it is true; fail after `timeout` seconds saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"Not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


async def handshake(ws_clients, relay, cookie):
    """(status, response headers, the client or None) of a cookie handshake: 101 when accepted."""
    try:
        client = await ws_clients.open(relay, cookie=cookie)
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.headers, None
    return 101, client.connection.response.headers, client


async def handshakes(ws_clients, relay, cookie):
    """Several cookie handshakes, one by one and then together (the relay batches those); their answers."""
    one_by_one = [await handshake(ws_clients, relay, cookie) for _ in range(3)]
    together = await asyncio.gather(*(handshake(ws_clients, relay, cookie) for _ in range(3)))
    return one_by_one + list(together)


async def welcomed(ws_clients, relay, cookie):
    status, _, client = await handshake(ws_clients, relay, cookie)
    return status == 101 and (await client.expect("welcome"))["type"] == "welcome"


def healthz_status(relay):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def healthz_answers(relay, status):
    return await asyncio.to_thread(healthz_status, relay) == status


def outage_records(log):
    return [record for record in RECORD_START.split(log) if DATABASE_DOWN.search(record)]


def recovery_records(log):
    return [record for record in RECORD_START.split(log) if DATABASE_BACK.search(record) and not DATABASE_DOWN.search(record)]


@pytest.fixture
async def relay_on_postgres(postgres, servers_on_postgres, relay_factory, ws_clients):
    """(a relay on the throwaway PostgreSQL, a session it welcomes while the database is up)."""
    alice = await asyncio.to_thread(login, postgres, "relay-outage")
    relay = relay_factory()
    client, _ = await ws_clients.with_cookie(relay, alice)
    await client.close()
    return relay, alice


async def test_a_relay_answers_handshakes_503_while_its_database_is_down_and_welcomes_once_it_is_back(
    postgres, relay_on_postgres, ws_clients
):
    relay, alice = relay_on_postgres
    async with database_down(postgres):
        for status, headers, _ in await handshakes(ws_clients, relay, alice.cookie):
            assert status == 503, f"A cookie handshake answered {status} while the database was down."
            assert 1 <= int(headers["Retry-After"]) <= 60, headers
    await wait_for(lambda: welcomed(ws_clients, relay, alice.cookie), WELCOMED_AGAIN, RECOVERY_WAIT)


async def test_a_relays_healthz_is_503_while_its_database_is_down_and_200_once_it_is_back(
    postgres, relay_on_postgres, ws_clients
):
    relay, alice = relay_on_postgres
    async with database_down(postgres):
        await handshakes(ws_clients, relay, alice.cookie)  # in case the relay notices only when it needs it
        await wait_for(lambda: healthz_answers(relay, 503), "/healthz answering 503 while the database is down")
    await wait_for(lambda: welcomed(ws_clients, relay, alice.cookie), WELCOMED_AGAIN, RECOVERY_WAIT)
    await wait_for(lambda: healthz_answers(relay, 200), "/healthz answering 200 once the database is back")


async def test_a_relay_logs_a_database_outage_once_and_its_end_without_tracebacks(postgres, relay_on_postgres, ws_clients):
    relay, alice = relay_on_postgres
    since = relay.log_size()

    async def logged(records_of):
        return bool(records_of(relay.output(since)))

    async with database_down(postgres):
        await handshakes(ws_clients, relay, alice.cookie)
        await wait_for(lambda: logged(outage_records), "the relay logging that the database is unreachable")
        await handshakes(ws_clients, relay, alice.cookie)  # more refusals: no more records
        await asyncio.to_thread(healthz_status, relay)
    await wait_for(lambda: welcomed(ws_clients, relay, alice.cookie), WELCOMED_AGAIN, RECOVERY_WAIT)
    await wait_for(lambda: logged(recovery_records), "the relay logging that the database is back")
    log = relay.output(since)
    assert "Traceback" not in log, log
    assert len(outage_records(log)) == 1, log
    assert len(recovery_records(log)) == 1, log


async def test_a_relay_started_while_its_database_is_down_answers_503_and_serves_once_it_is_back(
    postgres, servers_on_postgres, relay_factory, ws_clients
):
    alice = await asyncio.to_thread(login, postgres, "relay-start")
    async with database_down(postgres):
        relay = relay_factory()  # a restart during the outage (a deploy, a crashed worker) must not fail
        status, headers, _ = await handshake(ws_clients, relay, alice.cookie)
        assert status == 503 and 1 <= int(headers["Retry-After"]) <= 60, (status, headers)
    await wait_for(lambda: welcomed(ws_clients, relay, alice.cookie), WELCOMED_AGAIN, RECOVERY_WAIT)

