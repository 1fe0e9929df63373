"""
Real server processes for tests: relays (`runwsserver 127.0.0.1:<port> --noreload`) and any other
`django-admin` server command, started in a subprocess, waited for (bounded), stopped cleanly.

A process runs `python -m django <command>` in the test's working directory, with the test
process's import path, so the site's modules are what it imports; `env` decides its settings.
A relay that serves a test must see the test's database and Redis: relay_environment() gives a
site's relay exactly those (through notifications.testing.relay_settings), whatever its settings
module reads from the environment.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
BANNER = "Starting WebSocket relay at"

# Servers alive right now, and every server started in this run, so a failing test can show what
# they logged, those it stopped itself included.
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


@dataclass
class ServerProcess:
    """A server subprocess listening on 127.0.0.1:<port>, its output in a log file."""

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
        """SIGINT (Django's server commands stop cleanly on it), then SIGKILL; bounded."""
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


def start_server(server_class, command, log_dir, env, port=None, args=(), cwd=None):
    """
    Run `python -m django <command> 127.0.0.1:<port> --noreload [args]` with `env` (on a free
    port unless given, e.g. to restart a server where its clients expect it) and wait, bounded,
    until it accepts connections.
    """
    port = port or free_port()
    log_path = Path(log_dir) / f"{server_class.name}-{port}.log"
    python_path = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), *sys.path]))
    with open(log_path, "ab") as log:  # appended: a server restarted on its port keeps one log
        process = subprocess.Popen(
            [sys.executable, "-m", "django", command, f"127.0.0.1:{port}", "--noreload", *args],
            cwd=cwd,
            env={**env, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"},
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


def start_relay(log_dir, env, port=None, args=(), ops_port=None, cwd=None):
    """
    Start a relay with `env` (on a free port, or on `port`) and wait until it accepts connections
    and has said so; its operations endpoints are on `ops_port` (a free one unless given).
    """
    ops_port, port = ops_port or free_port(), port or free_port()
    log_path = Path(log_dir) / f"{Relay.name}-{port}.log"
    logged_before = log_path.stat().st_size if log_path.exists() else 0
    env = {"WSSERVER_METRICS_ADDRESS": f"127.0.0.1:{ops_port}", **env}
    relay = start_server(Relay, "runwsserver", log_dir, env, port, args, cwd)
    relay.ops_port = ops_port
    # The public port listens first, the operations address a moment later: the banner says both do.
    wait_until(relay, lambda: BANNER in relay.output(logged_before), "runwsserver's banner")
    return relay


def relay_environment():
    """
    The environment of a site's relay serving the running tests: the site's settings module,
    with the databases as the tests use them (the test databases, once created) and the Redis
    the tests publish to (notifications.testing.relay_settings applies them).
    """
    from django.conf import settings
    from django.db import connections

    from notifications import redisconf

    databases = {alias: _for_another_process(connections[alias].settings_dict) for alias in settings.DATABASES}
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "notifications.testing.relay_settings",
        # Under override_settings, SETTINGS_MODULE is None: the module the test run started with.
        "NOTIFICATIONS_TEST_SETTINGS": settings.SETTINGS_MODULE or os.environ["DJANGO_SETTINGS_MODULE"],
        "NOTIFICATIONS_TEST_DATABASES": json.dumps(databases, default=str),
        "NOTIFICATIONS_TEST_REDIS_URL": redisconf.url(),
    }


def _for_another_process(database):
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = str(database["NAME"])
        if name == ":memory:" or name.startswith("file:") and "mode=memory" in name:
            raise RuntimeError(
                "A relay process cannot open an in-memory SQLite test database: give it a file "
                "(DATABASES[...]['TEST']['NAME'], which the notifications.testing.pytest plugin sets)."
            )
    return {key: value for key, value in database.items() if key != "TEST"}
