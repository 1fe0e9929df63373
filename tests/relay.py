"""
Real server processes for the suite: relays (`runwsserver 127.0.0.1:<port> --noreload`) and, for
the browser tests, Django itself (`runserver 127.0.0.1:<port> --noreload`), launched by
notifications.testing.servers (the launcher a site's tests use too).

They share the test run's Redis and test database (DATABASE_URL pointing at the file the test
process writes to), so sessions, users and permissions created in a test are what they see, once
committed (tests that use them need transactional database access).
"""

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connections

from notifications.testing import servers
from notifications.testing.servers import LIVE, STARTED, Relay, ServerProcess, accepts, free_port, track, wait_until

__all__ = [
    "LIVE", "STARTED", "Relay", "ServerProcess", "accepts", "free_port", "track", "wait_until",
    "BASE_DIR", "DjangoServer", "database_url", "server_env", "start_server", "start_relay", "start_django",
]

BASE_DIR = Path(__file__).resolve().parent.parent


def database_url():
    """DATABASE_URL for a server process: the test database, which the test process created."""
    database = connections["default"].settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = str(database["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError("A server process cannot share an in-memory test database; see notifications/testing/pytest.py.")
        return f"sqlite:///{name}"
    if database["ENGINE"] == "django.db.backends.postgresql":
        credentials = quote(database["USER"] or "", safe="")
        if database["PASSWORD"]:
            credentials += ":" + quote(database["PASSWORD"], safe="")
        host = database["HOST"] or "localhost"
        port = f":{database['PORT']}" if database["PORT"] else ""
        return f"postgres://{credentials}@{host}{port}/{quote(database['NAME'], safe='')}"
    raise NotImplementedError(f"Server processes do not support {database['ENGINE']}.")


@dataclass
class DjangoServer(ServerProcess):
    name: str = "runserver"

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"


def server_env(settings_module="project.settings", extra_env=None):
    """The environment of a server process: the test run's Redis and database, DEBUG on."""
    inherited = dict(os.environ)
    # The browser tests set this in the test process (Playwright runs an event loop there); the
    # servers must keep Django's check that no ORM call runs on an event loop.
    inherited.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return {
        **inherited,
        "REDIS_URL": settings.CACHES["default"]["LOCATION"],
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PYTHONUNBUFFERED": "1",
        # DEBUG with no ALLOWED_HOSTS: localhost and 127.0.0.1 are allowed hosts and Origins
        # (wsserver.auth), and runserver serves the static files.
        "DJANGO_DEBUG": "1",
        "DJANGO_ALLOWED_HOSTS": "",
        **(extra_env or {}),  # which may name another database or Redis
    }


def start_server(server_class, command, log_dir, port=None, settings_module="project.settings", extra_env=None, args=()):
    """`command` in a subprocess with server_env() (on a free port unless given); see servers.start_server."""
    return servers.start_server(server_class, command, log_dir, server_env(settings_module, extra_env), port, args, BASE_DIR)


def start_relay(log_dir, settings_module="project.settings", extra_env=None, port=None, args=(), ops_port=None):
    """
    Start a relay (on a free port, or on `port`) and wait until it accepts connections. Its
    operations endpoints are on `ops_port` (a free one unless given).
    """
    return servers.start_relay(log_dir, server_env(settings_module, extra_env), port, args, ops_port, BASE_DIR)


def start_django(log_dir, relay, settings_module="project.settings", extra_env=None, port=None):
    """Start Django's runserver, whose pages send browsers to `relay`, and wait until it listens."""
    extra_env = {"WSSERVER_PUBLIC_URL": relay.url, **(extra_env or {})}
    return start_server(DjangoServer, "runserver", log_dir, port, settings_module, extra_env)
