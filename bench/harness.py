"""
What the benchmarks share: a throwaway world (a Redis, a SQLite database with users and
sessions), the peers' virtualenv, server subprocesses, and reading a process tree's RSS and CPU
time from /proc.

Everything lives in a temporary directory; servers run in their own process groups and are
killed with them, in `finally` blocks, whatever happens.
"""

import hashlib
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BASE_DIR = BENCH_DIR.parent
MAIN_PYTHON = sys.executable
PEERS_VENV = BENCH_DIR / ".venv-peers"
PEERS_REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"
ORIGIN = "http://localhost"
SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def raise_file_limit():
    """Thousands of sockets: the soft limit on open files up to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def log(message):
    print(message, file=sys.stderr, flush=True)


# --- The peers' virtualenv ------------------------------------------------------------------


def peers_python():
    """bench/.venv-peers/bin/python, created (or updated when its requirements change) first."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".installed"
    wanted = hashlib.sha256(PEERS_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    log(f"Creating {PEERS_VENV.relative_to(BASE_DIR)} (Django Channels, daphne, channels_redis, uvloop)...")
    if not python.exists():
        subprocess.run([sys.executable if sys.prefix == sys.base_prefix else "python3", "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(PEERS_REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(wanted)
    return str(python)


def versions(python, names):
    """{distribution: version} as installed for `python`."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))\n"
    )
    import json

    result = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def machine_facts():
    cpu = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load": os.getloadavg()[0],
    }


# --- Processes ------------------------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_map():
    """{ppid: [pid, ...]} of every process, from /proc."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(pid):
    tree = children_map()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, ()))
    return found


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids):
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def listen_overflows():
    """
    The kernel's count of connections dropped because a listen queue was full (TcpExt
    ListenOverflows, the whole machine): clients resend their SYN a second later.
    """
    with open("/proc/net/netstat") as netstat:
        names, values = [line.split() for line in netstat if line.startswith("TcpExt:")][:2]
    return int(values[names.index("ListenOverflows")])


def machine_busy_seconds():
    """(busy, steal): CPU time all cores of the machine spent busy, and stolen by the hypervisor."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:7]) - idle) / CLK_TCK, fields[7] / CLK_TCK


class CpuWatch:
    """
    How busy the machine was while something ran, and how much of that was not this benchmark
    (its own process tree: servers, load clients, Redis, publishers): other work on a shared
    machine would make the numbers lower, and the report says so.
    """

    def __init__(self):
        self.root = os.getpid()
        self.started = time.monotonic()
        self.machine = machine_busy_seconds()
        self.ours = cpu_seconds(process_tree(self.root))

    def stop(self):
        wall = max(time.monotonic() - self.started, 1e-9)
        busy, steal = machine_busy_seconds()
        machine = (busy - self.machine[0]) / wall
        ours = (cpu_seconds(process_tree(self.root)) - self.ours) / wall
        return {"machine": machine, "ours": ours, "foreign": max(0.0, machine - ours), "steal": (steal - self.machine[1]) / wall}


class Server:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, name, command, env, port, log_dir, cwd=BASE_DIR):
        self.name, self.port = name, port
        self.log_path = Path(log_dir) / f"{name.replace(' ', '-').replace('/', '-')}-{port}.log"
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_listening(self, timeout=START_TIMEOUT, path=None):
        """Until the port accepts connections (and, given `path`, answers HTTP 200 there)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if path is None:
                        return
                    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                    if sock.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not listen on port {self.port} within {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pids(self):
        return process_tree(self.process.pid)

    def rss_mib(self):
        return rss_kib(self.pids) / 1024

    def cpu(self):
        return cpu_seconds(self.pids)

    def stop(self):
        """SIGINT (every server here stops cleanly on it), then SIGKILL to the whole group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


# --- The world: Redis, database, users, sessions ----------------------------------------------


class World:
    """
    A temporary directory with a Redis (notifications.devredis) and a SQLite database, and the
    environment every server of this project (and Django in this process) runs with: DEBUG off,
    localhost allowed, bench.settings (the relay's per-address connection cap raised).
    """

    def __init__(self, keep=False):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.keep = keep
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.redis_process = None
        sys.path.insert(0, str(BASE_DIR))
        from notifications import devredis

        self.redis_process = devredis.start(self.dir / "redis")
        self.redis_url = devredis.url(self.dir / "redis")
        self.database = self.dir / "db.sqlite3"
        self.env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="bench.settings",
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY=SECRET_KEY,
            DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1",
            DATABASE_URL=f"sqlite:///{self.database}",
            REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
        )
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))})
        self.cookies = []
        self.users = []

    def setup_django(self):
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def create_users(self, count):
        """
        `count` users (bench00000...), each with one database session, and groups of the first
        1, 100 and `count` of them; self.cookies[i] is user i's Cookie header.
        """
        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.auth.hashers import make_password
        from django.contrib.auth.models import Group, User
        from django.contrib.sessions.backends.db import SessionStore
        from django.contrib.sessions.models import Session
        from django.utils import timezone
        from django.utils.crypto import get_random_string

        password = make_password("bench-password")
        User.objects.bulk_create(
            [User(username=f"bench{n:05d}", password=password) for n in range(len(self.users), count)], batch_size=1000
        )
        self.users = list(User.objects.filter(username__startswith="bench").order_by("username"))
        backend = settings.AUTHENTICATION_BACKENDS[0]
        expires = timezone.now() + timezone.timedelta(days=14)
        store = SessionStore()
        sessions, keys = [], []
        for user in self.users[len(self.cookies) :]:
            key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
            data = {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: user.get_session_auth_hash()}
            sessions.append(Session(session_key=key, session_data=store.encode(data), expire_date=expires))
            keys.append(key)
        Session.objects.bulk_create(sessions, batch_size=1000)
        self.cookies += [f"{settings.SESSION_COOKIE_NAME}={key}" for key in keys]
        # Memberships straight into the through table: no signals (no relay is running yet).
        through = User.groups.through
        self.groups = {}
        for size in sorted({1, 100, count}):
            group, _ = Group.objects.get_or_create(name=f"bench-{size}")
            through.objects.filter(group=group).delete()
            through.objects.bulk_create([through(user_id=u.pk, group_id=group.pk) for u in self.users[:size]], batch_size=1000)
            self.groups[size] = group
        return self.users

    def server(self, name, command, port, env=None, cwd=BASE_DIR):
        return Server(name, command, env or self.env, port, self.logs, cwd)

    def close(self):
        from notifications import devredis

        if self.redis_process is not None:
            devredis.stop(self.redis_process)
        if self.keep:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_alone(users, measure, keep=False):
    """
    A benchmark script run on its own: `measure(world, python)` on a world of its own with
    `users` users (and the peers' Python for the load client); the world removed after.
    """
    raise_file_limit()
    python = peers_python()
    world = World(keep=keep)
    try:
        world.setup_django()
        world.create_users(users)
        return measure(world, python)
    finally:
        world.close()
