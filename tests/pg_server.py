"""
A throwaway PostgreSQL server, for tests that stop the database under running servers and start
it again.

Debian's server binaries (/usr/lib/postgresql/<version>/bin, the `postgresql` package) run a
cluster in a temporary directory, listening on 127.0.0.1 only, on a free port, with trust
authentication: nothing but this machine's test processes reaches it, and no password has to
be passed around. PostgreSQL refuses to run as root, and CI runs the tests as root: then the
directory belongs to the `postgres` OS user and every server command runs as that user.

The `postgres` fixture gives a test module one such server with the app's tables (`manage.py
migrate`). Without the binaries it skips, except in CI (CI=true), where it fails and names the
package to install. `servers_on_postgres` points the server processes a test starts
(tests/relay.py) at it. Every wait is bounded.

Processes on this database are another site than the test run's: they get a Redis database of
their own (SITE_REDIS_DB of the run's Redis, emptied for each server), so neither site's stream
or card (notifications.deployment) misleads the other's relays.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
import redis
from django.conf import settings

from . import ci
from . import relay as servers

BIN_ROOT = Path("/usr/lib/postgresql")
TOOLS = ("initdb", "pg_ctl", "postgres")
APT_PACKAGE = "postgresql"
OS_USER = "postgres"  # Debian's package creates it
ROLE = DATABASE = "notifications"
START_TIMEOUT = 30  # seconds; pg_ctl waits this long, and is killed a little later
STOP_TIMEOUT = 10
COMMAND_TIMEOUT = 120  # `manage.py migrate` on a busy 2-core machine
SITE_REDIS_DB = 1

# Appended to postgresql.conf. Crash safety costs time and is of no use to a throwaway cluster
# (a stop is a clean fast shutdown); no Unix socket, so nothing outside TCP can reach it.
SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def unavailable(reason):
    ci.unavailable(reason, APT_PACKAGE, "The tests that stop and restart PostgreSQL")


def _version_key(bin_dir):
    return tuple(int(part) if part.isdigit() else 0 for part in bin_dir.parent.name.split("."))


def find_binaries():
    """The bin directory of the newest installed PostgreSQL with a server, or None."""
    complete = [path for path in BIN_ROOT.glob("*/bin") if all((path / tool).exists() for tool in TOOLS)]
    return max(complete, key=_version_key, default=None)


def owner_prefix():
    """
    The command prefix that runs a server tool as its owner: the `postgres` OS user when the
    tests run as root (initdb and postgres refuse root), nothing otherwise. setpriv execs the
    tool in place, so a timeout kills the tool itself rather than a wrapper.
    """
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        unavailable(f"No {OS_USER!r} OS user to run PostgreSQL as (it refuses root)")
    return ["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups"]


@dataclass
class PostgresServer:
    """One cluster in `root` (data/ and server.log), on 127.0.0.1:`port`, started and stopped at will."""

    bin_dir: Path
    root: Path
    port: int = field(default_factory=servers.free_port)
    prefix: list = field(default_factory=owner_prefix)

    @property
    def data_dir(self):
        return self.root / "data"

    @property
    def log_path(self):
        return self.root / "server.log"

    @property
    def url(self):
        """DATABASE_URL for the app's role and database."""
        return f"postgres://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def output(self):
        """What the server logged (shown when one of its commands fails)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _run(self, tool, *args, timeout, check=True):
        command = [*self.prefix, str(self.bin_dir / tool), *args]
        try:
            result = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            raise RuntimeError(f"{tool} did not finish within {timeout} s:\n{self.output()}") from expired
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{self.output()}")
        return result

    def _pg_ctl(self, action, *args, wait=STOP_TIMEOUT, check=True):
        """pg_ctl <action>, waiting at most `wait` seconds itself, and killed if it does not return soon after."""
        return self._run("pg_ctl", action, "-D", str(self.data_dir), "-w", "-t", str(wait), *args, timeout=wait + 5, check=check)

    def initdb(self):
        """A new cluster: the superuser `postgres`, trust authentication, this server's settings."""
        if self.prefix:
            shutil.chown(self.root, OS_USER, OS_USER)
        options = ["--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        self._run("initdb", "-D", str(self.data_dir), *options, timeout=COMMAND_TIMEOUT)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(SERVER_SETTINGS.format(port=self.port))

    def create_database(self):
        """The app's role, and its database (on a running server)."""
        admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB")
            admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")

    @property
    def running(self):
        return self._pg_ctl("status", check=False).returncode == 0

    def start(self):
        """Start the server (again: same port, same data) and wait until it accepts connections."""
        self._pg_ctl("start", "-l", str(self.log_path), wait=START_TIMEOUT)

    def stop(self):
        """Fast shutdown (connections are cut, as when a database server goes away); else immediate."""
        if self._pg_ctl("stop", "-m", "fast", check=False).returncode != 0 and self.running:
            self._pg_ctl("stop", "-m", "immediate")

    @contextmanager
    def down(self):
        """The server stopped for the block, and started again after it, whatever happens in it."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def destroy(self):
        """Stop the server if it runs, and delete its files."""
        try:
            if self.data_dir.exists() and self.running:
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def redis_database(url, number):
    """`url` with another database number (redis://host:port/N, unix:///path?db=N)."""
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query) if name != "db"]
    if parts.scheme == "unix":  # (urlunsplit would drop the empty host: unix:/path)
        return f"unix://{parts.path}?{urlencode([*query, ('db', str(number))])}"
    return urlunsplit(parts._replace(path=f"/{number}", query=urlencode(query)))


def site_env(server):
    """What a process of the site on `server` has instead of the test run's database and Redis."""
    return {"DATABASE_URL": server.url, "REDIS_URL": redis_database(settings.CACHES["default"]["LOCATION"], SITE_REDIS_DB)}


def empty_site_redis(server):
    """A fresh start for the site on `server`: no stream, outbox marks or card of an earlier one."""
    client = redis.Redis.from_url(site_env(server)["REDIS_URL"], socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


def manage(server, *args, timeout=COMMAND_TIMEOUT):
    """`manage.py <args>` as a process of the site on `server`; its stdout."""
    result = subprocess.run(
        [sys.executable, str(servers.BASE_DIR / "manage.py"), *args],
        cwd=servers.BASE_DIR,
        env={**servers.server_env(), **site_env(server)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


@dataclass
class Login:
    """A user of the throwaway database, logged in: their session cookie and their notifications."""

    user_id: int
    cookie: str
    event_ids: list


# Run by `manage.py shell`: the test process's own database is another one.
LOGIN_SCRIPT = """
import json
from django.conf import settings
from django.test import Client
from notifications import notify
from tests.factories import make_user

user = make_user({prefix!r})
events = [notify(user, title) for title in {titles!r}]
client = Client()
client.force_login(user)
cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
print(json.dumps({{"user_id": user.pk, "cookie": cookie, "event_ids": [event.pk for event in events]}}))
"""


def login(server, prefix="user", titles=()):
    """A new user on `server` (a running one), notified of `titles`, with a logged-in session."""
    output = manage(server, "shell", "-c", LOGIN_SCRIPT.format(prefix=prefix, titles=list(titles)))
    return Login(**json.loads(output.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def postgres():
    """A running throwaway PostgreSQL with the app's tables, for the tests of one module."""
    bin_dir = find_binaries()
    if bin_dir is None:
        unavailable(f"No PostgreSQL server binaries ({', '.join(TOOLS)}) under {BIN_ROOT}/<version>/bin")
    # In /tmp, not $TMPDIR: the `postgres` user must be able to reach it.
    server = PostgresServer(bin_dir, Path(tempfile.mkdtemp(prefix="notif-pg-", dir="/tmp" if os.path.isdir("/tmp") else None)))
    try:
        server.initdb()
        server.start()
        server.create_database()
        empty_site_redis(server)
        manage(server, "migrate", "--noinput")
        yield server
    finally:
        server.destroy()


@pytest.fixture
def servers_on_postgres(postgres, monkeypatch):
    """
    The relays and runservers this test starts (tests/relay.py) are processes of the site on
    `postgres`: server_env() is wrapped, so the servers that shared fixtures start (the browser
    tests' runserver) are too.
    """
    server_env = servers.server_env
    monkeypatch.setattr(servers, "server_env", lambda *args, **kwargs: {**server_env(*args, **kwargs), **site_env(postgres)})
    return postgres
