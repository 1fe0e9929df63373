"""
Shared fixtures: relay processes, WebSocket clients, and the Redis stream the app publishes to.

The real services come from tests/redis_server.py (Redis), notifications.testing.pytest (the test
database in a file) and tests/relay.py (runwsserver subprocesses).
"""

import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from notifications import preferences, redisaddress, redisconf
from notifications.revocation import control_key

from . import relay as relays
from .pg_server import postgres, servers_on_postgres  # noqa: F401 (fixtures of the tests that stop PostgreSQL)
from .wsclient import WSClients


def pytest_configure(config):
    # Hashing with PBKDF2's default iterations costs ~0.3 s per password: use a fast hasher in
    # the test process (relays never hash passwords; sessions and tickets use the stored hash).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def relay_log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("relays")


@pytest.fixture(scope="session")
def relay(django_db_setup, relay_log_dir):
    """One relay shared by the whole session (it keeps no state a test could leak)."""
    started = relays.start_relay(relay_log_dir)
    yield started
    started.stop()


@pytest.fixture
def relay_factory(django_db_setup, relay_log_dir):
    """
    Start more relays (start(settings_module=..., extra_env=..., port=...)); stopped after the
    test. Starting one on the port of a stopped one restarts it where its clients expect it.
    """
    started = []

    def start(**kwargs):
        started.append(relays.start_relay(relay_log_dir, **kwargs))
        return started[-1]

    yield start
    for each in started:
        each.stop()


@pytest.fixture
async def ws_clients():
    clients = WSClients()
    yield clients
    await clients.close_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _show_relay_output_on_failure(request):
    """
    When a test fails, print what the servers logged during it (shown with the failure): those
    alive when it started, and those it started, stopped since by their fixtures or not.
    """
    offsets = {id(each): each.log_size() for each in relays.LIVE}
    started = len(relays.STARTED)
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for each in {id(server): server for server in [*relays.LIVE, *relays.STARTED[started:]]}.values():
            logged = each.output(offsets.get(id(each), 0))
            if logged:
                print(f"--- {each.name} on port {each.port} logged:\n{logged}")


class Stream:
    """The Redis stream events are published to, read with redis-py from a starting point."""

    def __init__(self):
        self.key = redisconf.stream_key()
        self.redis = redisaddress.client(redisconf.url(), decode_responses=True)
        self.mark()

    def mark(self):
        """Ignore everything published so far."""
        newest = self.redis.xrevrange(self.key, count=1)
        self.start = newest[0][0] if newest else "0-0"

    def new_entries(self):
        """[(entry_id, routes, event)] published since the mark, oldest first."""
        entries = self.redis.xrange(self.key, min=f"({self.start}", max="+")
        return [(entry_id, json.loads(fields["routes"]), json.loads(fields["event"])) for entry_id, fields in entries]

    def new_events(self):
        return [event for _, _, event in self.new_entries()]


@pytest.fixture
def stream():
    reader = Stream()
    yield reader
    reader.redis.close()


class ControlStream:
    """The relays' control stream (revocation.py), read with redis-py from a starting point."""

    def __init__(self):
        self.redis = redisaddress.client(redisconf.url(), decode_responses=True)
        self.mark()

    def mark(self):
        """Ignore everything sent so far."""
        newest = self.redis.xrevrange(control_key(), count=1)
        self.start = newest[0][0] if newest else "0-0"

    def preferences_messages(self):
        """The messages since then telling that a user's preferences changed (preferences.publish)."""
        entries = self.redis.xrange(control_key(), min=f"({self.start}", max="+")
        return [fields for _, fields in entries if preferences.FIELD in fields]


@pytest.fixture
def control_stream():
    reader = ControlStream()
    yield reader
    reader.redis.close()


@pytest.fixture
async def close_orm_thread_connection():
    """See tests/aio.py: close the database connection of asgiref's worker thread after a test."""
    yield
    await sync_to_async(connections.close_all)()
