"""
Chaos test: every client gets every event addressed to it, once and in order, while relays and
Redis die under it.

    .venv/bin/python bench/chaos.py [--events 5000] [--clients 50] [--relays 2] [--publishers 2]
                                    [--short] [--duration S] [--seed N] [--database URL] [--keep]

It builds its own world in a temporary directory: a Redis (notifications.devredis) it can kill,
a fresh SQLite database (or, with --database postgres://..., that database, flushed), one user
per client, in a few groups. Then:

- `--publishers` processes (this script's `publish` command) call notify() and announce() at a
  steady rate: to one user, to a group, to a few users, to a group and a user, to everyone. Each
  writes the ids of the events it created, in the order its calls returned, to its own file
  (`publisher-<n>.commits`): that is the order they committed, since every call commits (in
  autocommit) before it returns;
- `--clients` WebSocket clients, one user each, spread over `--relays` runwsserver processes,
  record every event frame. When they lose their connection they reconnect with exponential
  backoff and full jitter, to whichever relay answers, and resume from their last cursor, as
  the widget does;
- meanwhile faults strike one after the other, each once the system recovered from the last:
  a relay is SIGKILLed and restarted on its port; another is SIGTERMed and restarted; Redis is
  SIGKILLed and restarted with its data deleted (so only the database knows what it carried);
  every relay is killed and Redis loses its data while they are down (clients resume from
  cursors into a stream that no longer exists); a relay is frozen (SIGSTOP) while Redis loses
  its data (its reader must recover what it had not read yet from the database).

After the publishers finish and the clients catch up, the checker compares, for each client,
the event ids it received with the events the database addressed to its user (directly, through
one of its groups, or to everyone) and prints the lost, duplicated, out-of-order (cursor not
after the previous frame's), out-of-commit-order (events that reached the client after an event
their own publisher committed later) and unauthorized counts. Cursors cannot show
those: an event published late (from the outbox, after Redis came back) gets a later cursor than
the events that overtook it, so only the publishers' own records of commit order reveal it. The
exit status is 0 only when all of them are zero and no client was told to `resync`; otherwise it
prints the first problems, each client's connection history and the tail of the relays' logs,
and keeps the temporary directory.

--short is the test suite's mode (tests/test_chaos.py): 5,000 events, 2 publishers, 50 clients,
2 relays and each of those faults once, in about 40 seconds. Without it, publishing lasts longer
(15,000 events by default) and the faults cycle, with every relay killed at once and a graceful
Redis restart too. Heavier runs find more (see README.md, "Chaos test"), e.g.

    .venv/bin/python bench/chaos.py --short --events 10000 --duration 20 --clients 200 --relays 3 --publishers 4
"""

import argparse
import asyncio
import ctypes
import inspect
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

USER_PREFIX = "chaos-user-"
GROUP_PREFIX = "chaos-group-"
GROUPS = 3
ORIGIN = "http://localhost"  # allowed for cookie handshakes with DEBUG and no ALLOWED_HOSTS

# Publishing: the share of each kind of addressing (the rest: a group and a user together).
ONE_USER, ONE_GROUP, SOME_USERS, EVERYONE = 0.40, 0.25, 0.20, 0.05

FAULTS = {
    "relay-sigkill": "relay SIGKILL",
    "relay-sigterm": "relay SIGTERM",
    "redis-lost": "Redis restart (data lost)",
    "relays-sigkill": "all relays SIGKILL",
    "relays-and-redis-lost": "all relays SIGKILL + Redis restart (data lost) while they are down",
    "relay-frozen-redis-lost": "relay SIGSTOP across a Redis restart (data lost)",
    "redis-kept": "Redis restart (data kept)",
}
SHORT_FAULTS = ["relay-sigkill", "relay-sigterm", "redis-lost", "relays-and-redis-lost", "relay-frozen-redis-lost"]
LONG_FAULTS = [
    "relay-sigkill", "relay-sigterm", "redis-lost", "relays-sigkill", "redis-kept", "relays-and-redis-lost",
    "relay-frozen-redis-lost",
]
SHORT_DURATION = 36.0  # seconds of publishing in --short
LONG_DURATION = 75.0
FAULT_SPACING = 8.0  # seconds between faults in the long mode

DOWNTIME = 1.0  # how long a killed relay or Redis stays down
START_TIMEOUT = 30.0  # a relay listening, a publisher ready, Redis answering
GO_TIMEOUT = 120.0  # how long a ready publisher waits to be told to go
RECOVERY_TIMEOUT = 20.0  # after a fault: relays reading Redis, every client connected again
CATCH_UP_TIMEOUT = 30.0  # after publishing: outbox empty, every client past its last event
SETTLE = 1.0  # after catching up, time for stray duplicates to show
PUBLISH_TIMEOUT_FACTOR = 3  # publishers may take this many times the planned duration (+30 s)

BACKOFF_BASE, BACKOFF_CAP = 0.05, 2.0  # client reconnection: full jitter, like the widget
OPEN_TIMEOUT = 5.0
WELCOME_TIMEOUT = 10.0

# The summary line, in the format tests/test_chaos.py reads; the commit-order count follows on a
# line of its own.
COMMIT_ORDER_COUNT = "out-of-commit-order"
COUNTS = ("lost", "duplicated", "out-of-order", COMMIT_ORDER_COUNT, "unauthorized", "resyncs")


# Processes --------------------------------------------------------------------------------------


def die_with_parent():
    """
    preexec_fn of every child started here: on Linux it gets SIGKILL when this process dies, even
    by SIGKILL, so a killed run leaves no relay or publisher behind. (Redis, which devredis starts,
    is stopped by Run.stop(), which SIGTERM and Ctrl-C reach but SIGKILL does not.)
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(args, env, log_path):
    """Start a child in its own process group (so killpg ends all of it), its output appended to a log."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            args,
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def kill_group(process):
    """SIGKILL a child started in its own session, and all it started; bounded."""
    if process is not None and process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Clock:
    """Seconds since the run started, for logs and the report."""

    def __init__(self):
        self.start = time.monotonic()
        self.wall_start = time.time()

    def now(self):
        return time.monotonic() - self.start

    def of_position(self, position):
        """When the event at a stream position was published, on this clock."""
        return position / 1_000_000 / 1000 - self.wall_start


@dataclass
class RelayProcess:
    """
    One `manage.py runwsserver 127.0.0.1:<port> --noreload`, with its operations endpoints
    (/metrics and the detailed /healthz: Redis reconnections, connections) on `ops_port`, as
    WSSERVER_METRICS_ADDRESS puts them; restarted on the same ports.
    """

    index: int
    port: int
    ops_port: int
    log_path: Path
    process: subprocess.Popen = None

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/ws/"

    def note(self, clock, text):
        """A line in the relay's log, so its own lines read in the context of the faults."""
        with open(self.log_path, "a") as log:
            log.write(f"=== chaos {clock.now():.2f} s: {text}\n")

    def start(self, env):
        args = [sys.executable, str(BASE_DIR / "manage.py"), "runwsserver", f"127.0.0.1:{self.port}", "--noreload"]
        self.process = spawn(args, env | {"WSSERVER_METRICS_ADDRESS": f"127.0.0.1:{self.ops_port}"}, self.log_path)

    async def wait_listening(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay {self.index} exited with {self.process.returncode}:\n{tail(self.log_path)}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
            else:
                writer.close()
                return
        raise RuntimeError(f"relay {self.index} did not listen on {self.port} within {timeout} s:\n{tail(self.log_path)}")

    def health(self):
        """The relay's detailed /healthz answer (blocking; None when it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/healthz", timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())
        except (OSError, ValueError):
            return None


class Run:
    """The world of one run: its directory, Redis, relays and publishers; stop() ends them all."""

    def __init__(self, directory, database_url):
        self.dir = directory
        self.redis_dir = directory / "redis"
        self.redis = None
        self.relays = []
        self.publishers = []
        self.clock = Clock()
        from notifications import devredis

        inherited = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        self.env = inherited | {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": devredis.url(self.redis_dir),
            "DJANGO_DEBUG": "1",
            "DJANGO_ALLOWED_HOSTS": "",
            "PYTHONUNBUFFERED": "1",
        }

    def start_redis(self):
        from notifications import devredis

        self.redis = devredis.start(self.redis_dir)

    def stop_redis(self, lose_data):
        """Killed with its dump deleted (all data lost), or saved and stopped (it reloads the dump on start)."""
        from notifications import devredis

        if lose_data:
            self.redis.kill()
            self.redis.wait(10)
            (self.redis_dir / "dump.rdb").unlink(missing_ok=True)
        else:
            devredis.stop(self.redis)  # SIGTERM: it saves its data first (it has save points)

    async def start_relays(self, count):
        self.relays = [RelayProcess(n, free_port(), free_port(), self.dir / f"relay-{n}.log") for n in range(count)]
        for relay in self.relays:
            relay.start(self.env)
        for relay in self.relays:
            await relay.wait_listening()

    def start_publishers(self, plan):
        """
        Publishing processes. Each sets Django up, creates its `ready` file, and starts when the
        `go` file appears (files, not pipes: nothing here ever blocks on a child).
        """
        counts = [plan.events // plan.publishers + (n < plan.events % plan.publishers) for n in range(plan.publishers)]
        for n, count in enumerate(counts):
            args = [
                sys.executable, str(Path(__file__).resolve()), "publish", "--index", str(n), "--count", str(count),
                "--rate", f"{count / plan.duration:.3f}", "--seed", str(plan.seed), "--barrier", str(self.dir),
            ]
            self.publishers.append(spawn(args, self.env, self.dir / f"publisher-{n}.log"))

    async def wait_publishers_ready(self):
        def ready():
            for n, publisher in enumerate(self.publishers):
                if publisher.poll() is not None:
                    log = tail(self.dir / f"publisher-{n}.log")
                    raise RuntimeError(f"publisher {n} exited with {publisher.returncode}:\n{log}")
            return all((self.dir / f"publisher-{n}.ready").exists() for n in range(len(self.publishers)))

        if not await wait_until(ready, START_TIMEOUT):
            raise RuntimeError(f"the publishers were not ready within {START_TIMEOUT} s")

    def go(self):
        (self.dir / "go").touch()

    def stop(self):
        """End every process of the run, whatever state it is in (SIGKILL to each process group)."""
        for process in [*self.publishers, *(relay.process for relay in self.relays)]:
            kill_group(process)
        kill_group(self.redis)

    def logs(self):
        return sorted(self.dir.glob("*.log")) + [self.redis_dir / "redis.log"]


# The publishing processes ---------------------------------------------------------------------


def commits_path(directory, index):
    """Where publisher `index` writes the ids of its events in commit order, one a line."""
    return Path(directory) / f"publisher-{index}.commits"


def publish(args):
    """
    `chaos.py publish`: notify()/announce() `count` times at `rate` per second, once told to go.
    Each event's id is written as soon as its call returns, when its transaction has committed:
    the file is this process's commit order, which the checker holds deliveries to.
    """
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    users = list(get_user_model().objects.filter(username__startswith=USER_PREFIX).order_by("pk"))
    groups = list(Group.objects.filter(name__startswith=GROUP_PREFIX).order_by("pk"))
    rng = random.Random(f"{args.seed}-{args.index}")
    (args.barrier / f"publisher-{args.index}.ready").touch()
    deadline = time.monotonic() + GO_TIMEOUT
    while not (args.barrier / "go").exists():
        if time.monotonic() > deadline:
            print(f"no go within {GO_TIMEOUT} s", flush=True)
            return 1
        time.sleep(0.01)
    started = time.monotonic()
    with open(commits_path(args.barrier, args.index), "w", buffering=1) as commits:  # a line at a time
        for n in range(args.count):
            delay = started + n / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            title = f"p{args.index}-{n}"  # for people reading logs; the checker goes by event id
            event = publish_one(rng, users, groups, title)
            commits.write(f"{event.pk}\n")
    print(f"published {args.count} in {time.monotonic() - started:.1f} s", flush=True)
    return 0


def publish_one(rng, users, groups, title):
    """One notify() or announce(), its addressing drawn by the shares above; the stored Event."""
    from notifications import announce, notify

    roll = rng.random()
    if roll < ONE_USER:
        return notify(rng.choice(users), title)
    if roll < ONE_USER + ONE_GROUP:
        return notify(rng.choice(groups), title)
    if roll < ONE_USER + ONE_GROUP + SOME_USERS:
        return notify(rng.sample(users, rng.randint(2, 3)), title)
    if roll < ONE_USER + ONE_GROUP + SOME_USERS + EVERYONE:
        return announce(title)
    return notify([rng.choice(groups), rng.choice(users)], title)  # a user who may be in the group too: still once


# Setting up (controller, synchronous ORM) -----------------------------------------------------


def setup_django(run, database_url):
    """The controller uses the run's database and Redis too: the ORM, sessions, the checker."""
    names = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS")
    os.environ.update({name: run.env[name] for name in names})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    if not database_url.startswith("sqlite"):
        call_command("flush", interactive=False, verbosity=0)


def create_users(count, group_count=GROUPS):
    """
    [(user_id, Cookie header)]: one user per client, each logged in. Users fall in the groups by
    index: one group each, except every (group_count + 1)th in none and every fifth in a second
    one. All in bulk, sessions included: bench/soak.py creates 10,000.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    password = make_password(None)  # unusable: nobody logs in with a password here
    users = user_model.objects.bulk_create(
        [user_model(username=f"{USER_PREFIX}{n:03d}", password=password) for n in range(count)], batch_size=1000
    )
    groups = Group.objects.bulk_create([Group(name=f"{GROUP_PREFIX}{n}") for n in range(group_count)])
    memberships = []
    for n, user in enumerate(users):
        if n % (group_count + 1) < group_count:
            memberships.append(user_model.groups.through(user_id=user.pk, group_id=groups[n % (group_count + 1)].pk))
        if n % 5 == 0:
            memberships.append(user_model.groups.through(user_id=user.pk, group_id=groups[(n + 1) % group_count].pk))
    user_model.groups.through.objects.bulk_create(memberships, ignore_conflicts=True, batch_size=1000)
    return list(zip((user.pk for user in users), log_in(users)))


def log_in(users):
    """
    The Cookie header of a new database session for each user, holding what a login stores
    (user id, backend, session auth hash), written in bulk: one login at a time would take
    minutes for 10,000 users.
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils.crypto import get_random_string

    store = SessionStore()
    backend = settings.AUTHENTICATION_BACKENDS[0]
    expires = store.get_expiry_date()
    keys = [get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789") for _ in users]
    sessions = []
    for key, user in zip(keys, users):
        data = {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: user.get_session_auth_hash()}
        sessions.append(store.model(session_key=key, session_data=store.encode(data), expire_date=expires))
    store.model.objects.bulk_create(sessions, batch_size=1000)
    return [f"{settings.SESSION_COOKIE_NAME}={key}" for key in keys]


# Clients ----------------------------------------------------------------------------------------


@dataclass
class Connection:
    """One connection of a client, for the report when something went wrong."""

    relay: int
    opened: float
    welcome: str = ""
    resumed_from: str = ""
    closed: float = None
    close_code: int = None
    frames: int = 0


@dataclass
class Frame:
    event_id: int
    position: int
    connection: int  # index into the client's connections
    at: float  # when it arrived (Clock)


@dataclass
class ChaosClient:
    """One user's WebSocket client: connects, resumes after every disconnection, records event frames."""

    index: int
    user_id: int
    cookie: str  # the Cookie header: the user's Django session
    relays: list
    clock: Clock
    cursor: str = None  # the last event's, or the first welcome's: where a resume starts
    frames: list = field(default_factory=list)
    connections: list = field(default_factory=list)
    resyncs: int = 0
    errors: list = field(default_factory=list)
    failed_attempts: Counter = field(default_factory=Counter)
    connected: bool = False
    stopping: bool = False
    _socket: object = None

    @property
    def highest_position(self):
        return max((frame.position for frame in self.frames), default=0)

    async def run(self):
        """
        Stay connected until stop(). After a failure, wait with exponential backoff and full
        jitter, then try the next relay (one that is down refuses at once); after a connection
        that worked, start again from this client's own relay.
        """
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        attempt = 0
        while not self.stopping:
            relay = self.relays[(self.index + attempt) % len(self.relays)]
            try:
                websocket = await connect(
                    relay.url,
                    additional_headers={"Cookie": self.cookie, "Origin": ORIGIN},
                    open_timeout=OPEN_TIMEOUT,
                    close_timeout=2,
                    proxy=None,
                )
            except (OSError, InvalidHandshake, TimeoutError) as error:
                self.failed_attempts[type(error).__name__] += 1
                attempt += 1
            else:
                self._socket = websocket
                connection = Connection(relay.index, self.clock.now())
                try:
                    await self._session(websocket, connection)
                except (ConnectionClosed, TimeoutError):
                    pass
                except Exception as error:  # a frame this client cannot read: a failure, reported
                    self.errors.append(repr(error))
                finally:
                    self.connected = False
                    await websocket.close()
                    connection.closed, connection.close_code = self.clock.now(), websocket.close_code
                attempt = 0 if connection.welcome else attempt + 1
            if not self.stopping:
                await asyncio.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))

    async def _session(self, websocket, connection):
        """welcome, then resume from the last cursor (none on the very first connection), then frames."""
        welcome = json.loads(await asyncio.wait_for(websocket.recv(), WELCOME_TIMEOUT))
        if welcome.get("type") != "welcome":
            self.errors.append(f"expected welcome, got {welcome}")
            return
        connection.welcome = welcome["cursor"]
        self.connections.append(connection)
        if self.cursor is None:
            self.cursor = welcome["cursor"]
        else:
            connection.resumed_from = self.cursor
            await websocket.send(json.dumps({"type": "resume", "cursor": self.cursor}))
        self.connected = True
        while True:
            self._receive(json.loads(await websocket.recv()))

    def _receive(self, frame):
        from notifications import cursors

        kind = frame.get("type")
        if kind == "event":
            position = cursors.position(frame["cursor"])
            self.frames.append(Frame(frame["event"]["id"], position, len(self.connections) - 1, self.clock.now()))
            self.connections[-1].frames += 1
            self.cursor = frame["cursor"]
        elif kind == "resync":
            self.resyncs += 1
        else:
            self.errors.append(f"unexpected frame {frame}")

    async def stop(self):
        self.stopping = True
        if self._socket is not None:
            await self._socket.close()


# Faults -----------------------------------------------------------------------------------------


@dataclass
class FaultRecord:
    kind: str
    detail: str
    at: float
    recovered_in: float = None  # None: not recovered within RECOVERY_TIMEOUT


class Faults:
    """
    Injects faults one at a time and waits for the system to recover from each. `all_connected`
    says whether every client is connected again (a function: the clients may live elsewhere).
    """

    def __init__(self, run, all_connected, recovery_timeout=RECOVERY_TIMEOUT):
        self.run = run
        self.all_connected = all_connected
        self.recovery_timeout = recovery_timeout
        self.records = []
        self._next_relay = 0

    async def inject(self, kind):
        record = FaultRecord(kind, "", self.run.clock.now())
        self.records.append(record)
        relays = self.run.relays
        if kind in ("relay-sigkill", "relay-sigterm"):
            how = signal.SIGKILL if kind == "relay-sigkill" else signal.SIGTERM
            record.detail = await self._restart_relays([self._pick_relay()], how)
        elif kind == "relays-sigkill":
            record.detail = await self._restart_relays(relays, signal.SIGKILL)
        elif kind == "relays-and-redis-lost":
            # Clients can only resume once the relays are back, from cursors into a stream that
            # no longer exists: what they missed is in the database alone.
            record.detail = await self._restart_relays(relays, signal.SIGKILL, meanwhile=self._restart_redis)
        elif kind == "relay-frozen-redis-lost":
            # The frozen relay's reader wakes up behind a stream that lost what it had not read
            # yet; its clients stay connected, so only the reader's recovery can bring it to them.
            reconnects = await self._reconnect_counts()
            relay = self._pick_relay()
            relay.note(self.run.clock, "SIGSTOP")
            relay.process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(DOWNTIME)
            record.detail = f"relay {relay.index} frozen; " + await self._restart_redis()
            relay.note(self.run.clock, "SIGCONT")
            relay.process.send_signal(signal.SIGCONT)
            record.detail += await self._wait_reconnected(reconnects)
        else:
            reconnects = await self._reconnect_counts()
            record.detail = await self._restart_redis(lose_data=kind == "redis-lost")
            record.detail += await self._wait_reconnected(reconnects)
        record.recovered_in = await self._recovered(record.at)
        return record

    def _pick_relay(self):
        """Relays take turns being the one a single-relay fault strikes."""
        relay = self.run.relays[self._next_relay % len(self.run.relays)]
        self._next_relay += 1
        return relay

    async def _restart_relays(self, relays, how, meanwhile=None):
        """
        Signal the relays, wait for them to exit, leave them down DOWNTIME seconds (and run
        `meanwhile` while they are down), start them again on their ports.
        """
        for relay in relays:
            relay.note(self.run.clock, f"sending {how.name}")
            relay.process.send_signal(how)
        exits = []
        for relay in relays:
            code = await exited(relay.process, 15)
            exits.append(f"relay {relay.index} exited {code}")
        await asyncio.sleep(DOWNTIME)
        if meanwhile is not None:
            exits.append(await meanwhile())
        for relay in relays:
            relay.note(self.run.clock, "restarting")
            relay.start(self.run.env)
        for relay in relays:
            await relay.wait_listening()
        return ", ".join(exits)

    async def _restart_redis(self, lose_data=True):
        """Stop Redis (killed and its dump deleted, or gracefully), leave it down DOWNTIME seconds, start it."""
        how = "SIGKILL, dump deleted" if lose_data else "SIGTERM, data saved"
        for relay in self.run.relays:
            relay.note(self.run.clock, f"stopping Redis ({how})")
        await asyncio.to_thread(self.run.stop_redis, lose_data)
        await asyncio.sleep(DOWNTIME)
        await asyncio.to_thread(self.run.start_redis)
        for relay in self.run.relays:
            relay.note(self.run.clock, "Redis started again")
        return f"Redis restarted ({how})"

    async def _reconnect_counts(self):
        """How many times each relay's reader reconnected to Redis so far (/healthz)."""
        return [((await asyncio.to_thread(relay.health)) or {}).get("redis_reconnects", 0) for relay in self.run.relays]

    async def _wait_reconnected(self, before):
        """Until every relay's reader has reconnected to Redis since `before`; a word for the report."""

        async def reconnected():
            now = await self._reconnect_counts()
            return all(n > b for n, b in zip(now, before))

        if await wait_until(reconnected, self.recovery_timeout):
            return "; every relay read Redis again"
        print(f"warning: {self.run.clock.now():.1f} s: not every relay reconnected to Redis", flush=True)
        return "; NOT every relay read Redis again"

    async def _recovered(self, since):
        """Seconds from the fault until every relay is healthy and every client connected; None on timeout."""

        async def healthy():
            if not self.all_connected():
                return False
            healths = [await asyncio.to_thread(relay.health) for relay in self.run.relays]
            return all(h and h["status"] == "ok" for h in healths)

        if await wait_until(healthy, self.recovery_timeout):
            return self.run.clock.now() - since
        print(f"warning: {self.run.clock.now():.1f} s: no recovery within {self.recovery_timeout} s", flush=True)
        return None


async def exited(process, timeout):
    """A child's exit code once it exits, None if it is still running after `timeout` seconds."""
    await wait_until(lambda: process.poll() is not None, timeout, interval=0.05)
    return process.poll()


async def wait_until(condition, timeout, interval=0.1):
    """Poll a condition (a function, or a coroutine function) until it holds (True) or `timeout` passes (False)."""

    async def holds():
        result = condition()
        return await result if inspect.isawaitable(result) else result

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await holds():
            return True
        await asyncio.sleep(interval)
    return await holds()


# The checker ------------------------------------------------------------------------------------


@dataclass
class Truth:
    """
    What the database says: each event's stream position, and the events each user is addressed
    (addressed_to). The addressees are kept as the Recipient rows name them (users, groups,
    audiences) and each user's set is built when asked: bench/soak.py checks 10,000 users, whose
    sets held at once would take gigabytes.
    """

    positions: dict
    by_user: dict  # user id → event ids
    by_group: dict  # group id → event ids
    by_audience: dict  # "all" / "staff" → event ids
    groups: dict  # user id → group ids
    staff: set  # user ids

    @classmethod
    def load(cls):
        """From Recipient rows: to the user, to one of the user's groups, to everyone (staff: to staff)."""
        from django.contrib.auth import get_user_model

        from notifications.models import Event, Recipient

        user_model = get_user_model()
        positions = dict(Event.objects.values_list("pk", "stream_position"))
        by_user, by_group, by_audience = defaultdict(set), defaultdict(set), defaultdict(set)
        recipients = Recipient.objects.values_list("event_id", "user_id", "group_id", "audience")
        for event_id, user_id, group_id, audience in recipients:
            if user_id is not None:
                by_user[user_id].add(event_id)
            elif group_id is not None:
                by_group[group_id].add(event_id)
            else:
                by_audience[audience].add(event_id)
        groups = defaultdict(set)
        for user_id, group_id in user_model.groups.through.objects.values_list("user_id", "group_id"):
            groups[user_id].add(group_id)
        staff = set(user_model.objects.filter(is_staff=True).values_list("pk", flat=True))
        return cls(positions, by_user, by_group, by_audience, groups, staff)

    def addressed_to(self, user_id):
        """The ids of the events addressed to a user: directly, through its groups, to everyone (or staff)."""
        ids = self.by_user[user_id] | self.by_audience["all"]
        if user_id in self.staff:
            ids |= self.by_audience["staff"]
        for group_id in self.groups[user_id]:
            ids |= self.by_group[group_id]
        return ids

    def last_position(self, user_id):
        return max((self.positions[event_id] or 0 for event_id in self.addressed_to(user_id)), default=0)


@dataclass
class CommitOrder:
    """What the publishers recorded: event id → (publisher, index in that publisher's commit order)."""

    of_event: dict

    @classmethod
    def load(cls, directory, publishers):
        of_event = {}
        for publisher in range(publishers):
            for index, line in enumerate(commits_path(directory, publisher).read_text().split()):
                of_event[int(line)] = (publisher, index)
        return cls(of_event)

    def inversions(self, frames):
        """
        (overtaking frame, late frame) for every event that reached the client after an event
        its publisher committed later. Only an event's first copy counts (a later one is a
        duplicate, counted as such), and events no publisher recorded are left out.
        """
        latest = {}  # publisher → (frame, commit index) of its latest-committed event received so far
        seen, found = set(), []
        for frame in frames:
            if frame.event_id in seen or frame.event_id not in self.of_event:
                continue
            seen.add(frame.event_id)
            publisher, index = self.of_event[frame.event_id]
            overtaking = latest.get(publisher)
            if overtaking is None or index > overtaking[1]:
                latest[publisher] = (frame, index)
            else:
                found.append((overtaking[0], frame))
        return found


def outbox_size():
    from notifications.models import Event

    return Event.objects.filter(stream_position__isnull=True).count()


@dataclass
class Verdict:
    """One client's problems."""

    client: ChaosClient
    lost: list
    duplicated: list  # event ids, once per extra copy
    out_of_order: list  # (previous frame, frame)
    unauthorized: list
    moved: int  # frames whose cursor is not the event's stored position (published twice)
    out_of_commit_order: list  # (overtaking frame, late frame): see CommitOrder.inversions

    @property
    def counts(self):
        return {
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "out-of-order": len(self.out_of_order),
            "unauthorized": len(self.unauthorized),
            "resyncs": self.client.resyncs,
            COMMIT_ORDER_COUNT: len(self.out_of_commit_order),
        }


def judge(client, truth, commit_order):
    received = Counter(frame.event_id for frame in client.frames)
    expected = truth.addressed_to(client.user_id)
    return Verdict(
        client,
        lost=sorted(expected - received.keys()),
        duplicated=sorted(event_id for event_id, count in received.items() for _ in range(count - 1)),
        out_of_order=[(a, b) for a, b in zip(client.frames, client.frames[1:]) if b.position <= a.position],
        unauthorized=sorted(received.keys() - expected),
        moved=sum(1 for frame in client.frames if truth.positions.get(frame.event_id) != frame.position),
        out_of_commit_order=commit_order.inversions(client.frames),
    )


# The run ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    events: int
    clients: int
    relays: int
    publishers: int
    duration: float
    faults: list
    seed: int

    def describe(self):
        faults = ", ".join(FAULTS[kind] + (f" ×{n}" if n > 1 else "") for kind, n in Counter(self.faults).items())
        return (
            f"events {self.events} · clients {self.clients} · relays {self.relays} · "
            f"publishers {self.publishers} · faults: {faults}"
        )


async def chaos(plan, run, users):
    """Start relays, publishers and clients; inject the faults; catch up; judge. (verdicts, stats)."""
    run.start_publishers(plan)
    await run.start_relays(plan.relays)
    clients = [ChaosClient(n, user_id, cookie, run.relays, run.clock) for n, (user_id, cookie) in enumerate(users)]
    tasks = [asyncio.create_task(client.run()) for client in clients]
    try:
        if not await wait_until(lambda: all(client.connected for client in clients), START_TIMEOUT):
            raise RuntimeError("the clients did not all connect")
        await run.wait_publishers_ready()
        run.go()
        started = run.clock.now()
        print(f"{started:5.1f} s  publishing {plan.events} events for ~{plan.duration:.0f} s", flush=True)
        faults = Faults(run, lambda: all(client.connected for client in clients))
        for n, kind in enumerate(plan.faults):
            await asyncio.sleep(max(0.0, started + plan.duration * (n + 1) / (len(plan.faults) + 1) - run.clock.now()))
            record = await faults.inject(kind)
            recovered = f"recovered in {record.recovered_in:.1f} s" if record.recovered_in is not None else "NOT RECOVERED"
            print(f"{record.at:5.1f} s  {FAULTS[kind]}: {record.detail}; {recovered}", flush=True)
        await wait_publishers(run, plan)
        published_in = run.clock.now() - started
        print(f"{run.clock.now():5.1f} s  publishers done", flush=True)
        truth = await catch_up(clients)
        outbox_left = await asyncio.to_thread(outbox_size)
        print(f"{run.clock.now():5.1f} s  caught up", flush=True)
    finally:
        for client in clients:
            client.stopping = True
        await asyncio.wait([asyncio.create_task(client.stop()) for client in clients], timeout=10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    commit_order = CommitOrder.load(run.dir, plan.publishers)
    verdicts = [judge(client, truth, commit_order) for client in clients]
    stats = {
        "published_in": published_in, "faults": faults.records, "truth": truth, "commit_order": commit_order,
        "outbox_left": outbox_left,
    }
    return verdicts, stats


async def wait_publishers(run, plan):
    """Until every publisher exits (bounded); a publisher that failed fails the run."""
    timeout = plan.duration * PUBLISH_TIMEOUT_FACTOR + 30
    for n, publisher in enumerate(run.publishers):
        code = await exited(publisher, timeout)
        if code is None:
            raise RuntimeError(f"publisher {n} still running after {timeout:.0f} s")
        if code != 0:
            raise RuntimeError(f"publisher {n} exited with {code}:\n{tail(run.dir / f'publisher-{n}.log')}")


async def catch_up(clients):
    """
    Wait, bounded, until the outbox is empty and every client has received up to the last event
    addressed to it, then a little longer for stray duplicates; what the database says (Truth).
    """
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while await asyncio.to_thread(outbox_size) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    truth = await asyncio.to_thread(Truth.load)
    targets = {client.index: truth.last_position(client.user_id) for client in clients}
    await wait_until(
        lambda: all(client.highest_position >= targets[client.index] for client in clients),
        max(0.0, deadline - time.monotonic()),
    )
    await asyncio.sleep(SETTLE)
    return truth


def logged_total(paths, pattern):
    """The sum of a number the relays log (events from the outbox, events recovered from the database)."""
    return sum(int(n) for path in paths for n in re.findall(pattern, path.read_text(errors="replace")))


def report(plan, run, verdicts, stats):
    """Print the summary (and the details of any problem); whether the run passed."""
    totals = {name: sum(verdict.counts[name] for verdict in verdicts) for name in COUNTS}
    clients = [verdict.client for verdict in verdicts]
    deliveries = sum(len(client.frames) for client in clients)
    closes = Counter(connection.close_code for client in clients for connection in client.connections)
    refused = sum(sum(client.failed_attempts.values()) for client in clients)
    relay_logs = [relay.log_path for relay in run.relays]
    duration = run.clock.now()
    print()
    print(plan.describe())
    print(" · ".join(f"{name} {totals[name]}" for name in COUNTS))
    codes = ", ".join(f"{code}×{n}" for code, n in sorted(closes.items(), key=str))
    print(
        f"duration {duration:.1f} s · publishing {stats['published_in']:.1f} s "
        f"({plan.events / stats['published_in']:.0f} events/s) · deliveries {deliveries} · "
        f"connections {sum(closes.values())} (close codes: {codes}) · failed connection attempts {refused}"
    )
    from_outbox = logged_total(relay_logs, r"Published (\d+) event")
    recovered = logged_total(relay_logs, r"Recovered (\d+) event")
    print(
        f"published by a relay from the outbox {from_outbox} · recovered by a relay's reader from the "
        f"database {recovered} · frames whose cursor is not the event's stored position "
        f"{sum(verdict.moved for verdict in verdicts)}"
    )
    failures = [name for name in COUNTS if totals[name]]
    if stats["outbox_left"]:
        failures.append(f"{stats['outbox_left']} event(s) still in the outbox")
    failures += [f"{FAULTS[r.kind]} at {r.at:.1f} s: no recovery" for r in stats["faults"] if r.recovered_in is None]
    failures += [f"client {client.index}: {error}" for client in clients for error in client.errors[:3]]
    if failures:
        print("FAILED: " + "; ".join(failures))
        print_problems(verdicts, stats["truth"], stats["commit_order"], run)
    else:
        print("PASSED")
    return not failures


def print_problems(verdicts, truth, commit_order, run, clients_shown=5, ids_shown=10):
    """The first problem clients: their bad frames, their connections; then the logs' tails."""
    from notifications import cursors

    def event(event_id):
        position = truth.positions.get(event_id)
        if position is None:
            return f"{event_id} (not published)"
        return f"{event_id} @{cursors.cursor(position)} ({run.clock.of_position(position):.2f} s)"

    def frame(f):
        return f"{f.event_id} @{cursors.cursor(f.position)} on connection {f.connection} at {f.at:.2f} s"

    def committed(f):
        publisher, index = commit_order.of_event[f.event_id]
        return f"{frame(f)} (publisher {publisher}'s commit {index})"

    def around(client, position):
        """The frames received just before and just after the first lost event's position."""
        before = max((f for f in client.frames if f.position < position), key=lambda f: f.position, default=None)
        after = min((f for f in client.frames if f.position > position), key=lambda f: f.position, default=None)
        return f"around the first lost event, received {before and frame(before)}, then {after and frame(after)}"

    problems = [verdict for verdict in verdicts if any(verdict.counts.values())]
    for verdict in problems[:clients_shown]:
        client = verdict.client
        print(f"\nclient {client.index} (user {client.user_id}): {verdict.counts}, {len(client.frames)} frames")
        for label in ("lost", "duplicated", "unauthorized"):
            ids = getattr(verdict, label)
            if ids:
                print(f"  {label}: " + ", ".join(event(event_id) for event_id in ids[:ids_shown]))
        if verdict.lost and truth.positions.get(verdict.lost[0]) is not None:
            print("  " + around(client, truth.positions[verdict.lost[0]]))
        for previous, late in verdict.out_of_order[:ids_shown]:
            print(f"  out of order: {frame(late)} after {frame(previous)}")
        for overtaking, late in verdict.out_of_commit_order[:ids_shown]:
            print(f"  out of commit order: {committed(late)} after {committed(overtaking)}")
        for duplicate in verdict.duplicated[:3]:
            print(f"  copies of {duplicate}: " + "; ".join(frame(f) for f in client.frames if f.event_id == duplicate))
        for n, connection in enumerate(client.connections):
            closed = "open" if connection.closed is None else f"{connection.closed:.2f} s"
            print(
                f"  connection {n}: relay {connection.relay}, {connection.opened:.2f} s – {closed}, "
                f"welcome @{connection.welcome}, resumed from {connection.resumed_from or '-'}, "
                f"{connection.frames} frames, close code {connection.close_code}"
            )
    if len(problems) > clients_shown:
        print(f"\n... and {len(problems) - clients_shown} more client(s) with problems")
    for path in run.logs():
        print(f"\n--- {path.name} (tail)\n{tail(path)}")


# Entry points -----------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the test suite's mode: the minimums, within two minutes")
    parser.add_argument("--events", type=int, help="events in all (default 5000 with --short, else 15000)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--relays", type=int, default=2)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument(
        "--duration", type=float, help=f"seconds of publishing (default {SHORT_DURATION:.0f} with --short, else {LONG_DURATION:.0f})"
    )
    parser.add_argument("--seed", type=int, default=None, help="seeds the publishers' choices (default: random, printed)")
    parser.add_argument("--database", help="a postgres://... URL instead of a fresh SQLite file: ITS TABLES ARE FLUSHED")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory even when the run passes")
    args = parser.parse_args(argv)
    if args.relays < 2 or args.publishers < 1 or args.clients < 1:
        parser.error("needs at least 2 relays, 1 publisher and 1 client")
    return args


def make_plan(args):
    duration = args.duration or (SHORT_DURATION if args.short else LONG_DURATION)
    if args.short:
        faults = SHORT_FAULTS
    else:
        faults = [LONG_FAULTS[n % len(LONG_FAULTS)] for n in range(max(len(LONG_FAULTS), int(duration // FAULT_SPACING)))]
    return Plan(
        events=args.events or (5000 if args.short else 15000),
        clients=args.clients,
        relays=args.relays,
        publishers=args.publishers,
        duration=duration,
        faults=faults,
        seed=args.seed if args.seed is not None else random.randrange(1_000_000),
    )


def raise_open_files_limit(clients):
    """Each client holds a socket here and at a relay: lift the soft limit toward the hard one if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients * 2 + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))


def controller(argv):
    args = parse_args(argv)
    plan = make_plan(args)
    raise_open_files_limit(plan.clients)
    # A short path: unix socket paths are limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp" if os.path.isdir("/tmp") else None))
    database_url = args.database or f"sqlite:///{directory / 'chaos.sqlite3'}"
    run = Run(directory, database_url)
    # SIGTERM (a test's timeout, a CI cancel) unwinds through the finally below like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    print(f"chaos: {plan.describe()} · seed {plan.seed} · in {directory}", flush=True)
    passed = False
    try:
        run.start_redis()
        setup_django(run, database_url)
        users = create_users(plan.clients)
        verdicts, stats = asyncio.run(chaos(plan, run, users))
        passed = report(plan, run, verdicts, stats)
    finally:
        finish(run, directory, passed, args.keep)
    return 0 if passed else 1


def finish(run, directory, passed, keep):
    """Stop everything the run started; delete its directory if it passed (and --keep was not given)."""
    run.stop()
    if passed and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        print(f"logs and database kept in {directory}", flush=True)


def publisher(argv):
    parser = argparse.ArgumentParser(prog="chaos.py publish", description="one publishing process, started by the controller")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--barrier", type=Path, required=True, help="directory of the ready and go files")
    return publish(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(publisher(sys.argv[2:]) if sys.argv[1:2] == ["publish"] else controller(sys.argv[1:]))
