"""
A pytest plugin for sites' tests (with pytest-django and pytest-asyncio). Enable it in your
root conftest.py:

    pytest_plugins = ["notifications.testing.pytest"]

Fixtures:
- `published_events`: an EventCapture of what the test published (notifications.testing).
- `notifications_relay`: a real relay process (`runwsserver`) for the whole session, on your
  settings with the test database and the Redis your settings name (servers.relay_environment).
- `notifications_client`: `await notifications_client(user)` connects to that relay as `user`
  (a ticket, as an API client gets one) and returns a WSClient past its `welcome`
  (client.welcome); every client is closed after the test.

The relay sees only what is committed: tests that use it need
`@pytest.mark.django_db(transaction=True)`. A SQLite test database is put in a file (the relay
process must open it) unless its TEST NAME is set.
"""

import shutil
import tempfile
from pathlib import Path

import pytest
import pytest_asyncio
from websockets.exceptions import ConnectionClosed

from . import captured_events
from .client import connect_as
from .servers import relay_environment, start_relay

_state = {"dir": None}


def pytest_configure(config):
    from django.conf import settings

    if not settings.configured:
        return
    for alias, database in settings.DATABASES.items():
        test = database.setdefault("TEST", {})
        if database.get("ENGINE") == "django.db.backends.sqlite3" and not test.get("NAME"):
            if _state["dir"] is None:
                _state["dir"] = Path(tempfile.mkdtemp(prefix="notifications-testdb-"))
            test["NAME"] = str(_state["dir"] / f"{alias}.sqlite3")


def pytest_unconfigure(config):
    if _state["dir"] is not None:
        shutil.rmtree(_state["dir"], ignore_errors=True)
        _state["dir"] = None


@pytest.fixture
def published_events():
    with captured_events() as capture:
        yield capture


@pytest.fixture(scope="session")
def notifications_relay(django_db_setup, tmp_path_factory):
    relay = start_relay(tmp_path_factory.mktemp("notifications-relay"), relay_environment())
    yield relay
    relay.stop()


@pytest_asyncio.fixture
async def notifications_client(notifications_relay):
    opened = []

    async def connect(user):
        client = await connect_as(notifications_relay.url, user)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        try:
            await client.close()
        except (TimeoutError, ConnectionClosed, OSError):  # closed by the server, or broken by the test
            pass
