"""
Real relay processes for the tests: `manage.py runwsserver 127.0.0.1:<port> --noreload`.

A relay shares the test run's Redis and test database (DATABASE_URL pointing at the file the
test process writes to), so sessions, users and permissions created in a test are what the relay
sees, once committed (relay tests use transactional database access).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections

BASE_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# Relays alive right now, so a failing test can show what they logged (conftest.py).
LIVE = []


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    """DATABASE_URL for a relay: the test database, which the test process created."""
    database = connections["default"].settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = str(database["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError("The relay cannot share an in-memory test database; see tests/redis_server.py.")
        return f"sqlite:///{name}"
    # PostgreSQL: build postgres://USER:PASSWORD@HOST:PORT/<test NAME> here when it is needed.
    raise NotImplementedError(f"Relay tests do not support {database['ENGINE']} yet.")


@dataclass
class Relay:
    port: int
    process: subprocess.Popen
    log_path: Path
    host: str = "127.0.0.1"
    _log_offset: int = field(default=0, repr=False)

    @property
    def url(self):
        return f"ws://{self.host}:{self.port}/ws/"

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


def start_relay(log_dir, settings_module="project.settings", extra_env=None):
    """Start a relay on a free port and wait (bounded) until it accepts connections."""
    port = free_port()
    log_path = Path(log_dir) / f"relay-{port}.log"
    env = dict(
        os.environ,
        REDIS_URL=settings.CACHES["default"]["LOCATION"],
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE=settings_module,
        PYTHONUNBUFFERED="1",
        # DEBUG with no ALLOWED_HOSTS: http://localhost is an allowed Origin (wsserver.auth).
        DJANGO_DEBUG="1",
        DJANGO_ALLOWED_HOSTS="",
        **(extra_env or {}),
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "runwsserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    relay = Relay(port, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"The relay exited with code {process.returncode} before listening:\n{relay.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            relay.stop()
            raise RuntimeError(f"The relay did not listen on port {port} within {START_TIMEOUT} s:\n{relay.output()}")
        time.sleep(0.05)
    LIVE.append(relay)
    return relay
