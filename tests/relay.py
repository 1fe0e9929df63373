"""
Real server processes for the tests: relays (`manage.py runwsserver 127.0.0.1:<port> --noreload`)
and, for the browser tests, Django itself (`manage.py runserver 127.0.0.1:<port> --noreload`).

They share the test run's Redis and test database (DATABASE_URL pointing at the file the test
process writes to), so sessions, users and permissions created in a test are what they see, once
committed (tests that use them need transactional database access).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connections

BASE_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# Servers alive right now, and every server started in this run, so a failing test can show what
# they logged (conftest.py), those it stopped itself included.
LIVE = []
STARTED = []


def track(server):
    """Count a server in LIVE and STARTED (start_server does it; other launchers call it)."""
    LIVE.append(server)
    STARTED.append(server)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    """DATABASE_URL for a server process: the test database, which the test process created."""
    database = connections["default"].settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = str(database["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError("A server process cannot share an in-memory test database; see tests/redis_server.py.")
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
class ServerProcess:
    """A `manage.py` server subprocess listening on 127.0.0.1:<port>, its output in a log file."""

    port: int
    process: subprocess.Popen
    log_path: Path
    host: str = "127.0.0.1"
    name: str = "server"
    _log_offset: int = field(default=0, repr=False)

    def output(self, since=0):
        try:
            return self.log_path.read_bytes()[since:].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def stop(self):
        """SIGINT (both commands stop cleanly on it), then SIGKILL; bounded."""
        if self in LIVE:
            LIVE.remove(self)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


@dataclass
class Relay(ServerProcess):
    name: str = "relay"
    ops_port: int | None = None  # WSSERVER_METRICS_ADDRESS: /metrics and the detailed /healthz

    @property
    def url(self):
        return f"ws://{self.host}:{self.port}/ws/"

    def ops_url(self, path):
        return f"http://{self.host}:{self.ops_port}{path}"


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
    """
    Run `manage.py <command> 127.0.0.1:<port> --noreload [args]` (on a free port unless given,
    e.g. to restart a server where its clients expect it) and wait, bounded, until it accepts
    connections.
    """
    port = port or free_port()
    log_path = Path(log_dir) / f"{server_class.name}-{port}.log"
    with open(log_path, "ab") as log:  # appended: a server restarted on its port keeps one log
        process = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), command, f"127.0.0.1:{port}", "--noreload", *args],
            cwd=BASE_DIR,
            env=server_env(settings_module, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = server_class(port, process, log_path)
    wait_until(server, lambda: accepts(port), f"{command} listening on port {port}")
    track(server)
    return server


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(server, condition, what):
    """Until condition(); bounded, and the server stopped if it never comes (or exits first)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if server.process.poll() is not None:
            raise RuntimeError(f"Exited with code {server.process.returncode} before {what}:\n{server.output()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"Not within {START_TIMEOUT} s: {what}:\n{server.output()}")
        time.sleep(0.05)


def start_relay(log_dir, settings_module="project.settings", extra_env=None, port=None, args=(), ops_port=None):
    """
    Start a relay (on a free port, or on `port`) and wait until it accepts connections. Its
    operations endpoints are on `ops_port` (a free one unless given).
    """
    ops_port, port = ops_port or free_port(), port or free_port()
    log_path = Path(log_dir) / f"{Relay.name}-{port}.log"
    logged_before = log_path.stat().st_size if log_path.exists() else 0
    extra_env = {"WSSERVER_METRICS_ADDRESS": f"127.0.0.1:{ops_port}", **(extra_env or {})}
    relay = start_server(Relay, "runwsserver", log_dir, port, settings_module, extra_env, args)
    relay.ops_port = ops_port
    # The public port listens first, the operations address a moment later: the banner says both do.
    wait_until(relay, lambda: "Starting WebSocket relay at" in relay.output(logged_before), "runwsserver's banner")
    return relay


def start_django(log_dir, relay, settings_module="project.settings", extra_env=None, port=None):
    """Start Django's runserver, whose pages send browsers to `relay`, and wait until it listens."""
    extra_env = {"WSSERVER_PUBLIC_URL": relay.url, **(extra_env or {})}
    return start_server(DjangoServer, "runserver", log_dir, port, settings_module, extra_env)
