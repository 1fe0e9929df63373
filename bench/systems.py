"""
The systems under test, each with how to start it and how to publish to it:

- ours: `manage.py runwsserver` (bench.settings), clients authenticated by session cookie,
  events put on our stream in our format by the same Lua script as notifications.publishing,
  routed to `inbox:all` so that every client receives every event;
- bare: bench/bare_relay.py, entries XADDed to its stream;
- channels: daphne serving bench/channels_peer, group_send from a publisher process in the
  peers' virtualenv.

All three carry the same payload (bench/payload.py) on the same Redis.
"""

import json
import subprocess
import time

import redis

from harness import BENCH_DIR, MAIN_PYTHON, ORIGIN, free_port
from payload import ID_BASE, payload

BARE_STREAM = "bare:events"
STREAM_MAXLEN = 10_000


class System:
    """What the three systems under test share: their URL, and stopping server and publisher."""

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/ws/"

    def stop(self):
        self.publisher.close()
        self.server.stop()


class Ours(System):
    ready = "welcome"  # authenticated and following its inbox
    authenticated = True
    origin = ORIGIN

    def __init__(self, world, workers=1, compression=False, prose=False):
        """`compression`: WSSERVER_COMPRESSION on; `prose`: events of varied text (payload.py)."""
        self.world = world
        self.workers = workers
        self.compression = compression
        self.prose = prose
        self.key = "ours" if workers == 1 else f"ours-{workers}w"
        self.label = f"ours, {workers} worker{'s' if workers > 1 else ''}"

    def start(self):
        self.port = free_port()
        command = [MAIN_PYTHON, "manage.py", "runwsserver", f"127.0.0.1:{self.port}", "--noreload"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        env = dict(self.world.env, WSSERVER_COMPRESSION="1" if self.compression else "0")
        self.server = self.world.server(self.label, command, self.port, env=env)
        self.server.wait_listening(path="/healthz")
        if self.workers > 1:
            wait_for_workers(self.server, self.workers)
        self.publisher = OursPublisher(self.world, self.prose)
        return self.server


def wait_for_workers(server, workers, timeout=60):
    """Until all workers listen: the command prints its banner once they all do."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f"({workers} workers)" in server.output():
            return
        if server.process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{server.name}: {workers} workers did not start:\n{server.output()[-3000:]}")


class StreamPublisher:
    """Publishes numbered payloads to Redis, in one pipelined burst or paced; _add(seq, client) adds one."""

    def __init__(self, world):
        self.redis = redis.Redis.from_url(world.redis_url)

    def burst(self, seq, count):
        pipe = self.redis.pipeline(transaction=False)
        for n in range(count):
            self._add(seq + n, pipe)
        pipe.execute()

    def paced(self, seq, count, rate):
        pace(lambda n: self._add(seq + n, self.redis), count, rate)

    def close(self):
        self.redis.close()


class OursPublisher(StreamPublisher):
    """XADD through notifications.publishing's Lua script (once-only guard included)."""

    def __init__(self, world, prose=False):
        from notifications.publishing import PUBLISH, mark_ready, publish_arguments

        super().__init__(world)
        self.prose = prose
        self.script = self.redis.register_script(PUBLISH)
        self.arguments = publish_arguments
        mark_ready(self.redis)
        self.routes = json.dumps(["inbox:all"])

    def _add(self, seq, client):
        now_ns = time.time_ns()
        entry = (ID_BASE + seq, payload(seq, now_ns, prose=self.prose), self.routes, now_ns // 1000)
        self.script(*self.arguments([entry]), client=client)


def pace(publish, count, rate):
    started = time.monotonic()
    for n in range(count):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publish(n)


class Bare(System):
    key = "bare"
    label = "bare websockets + Redis"
    ready = "open"
    authenticated = False
    origin = None

    def __init__(self, world):
        self.world = world

    def start(self):
        self.port = free_port()
        command = [MAIN_PYTHON, str(BENCH_DIR / "bare_relay.py"), "--port", str(self.port), "--redis", self.world.redis_url, "--stream", BARE_STREAM]
        self.server = self.world.server(self.label, command, self.port)
        self.server.wait_listening()
        self.publisher = BarePublisher(self.world)
        return self.server


class BarePublisher(StreamPublisher):
    def _add(self, seq, client):
        client.xadd(BARE_STREAM, {"data": payload(seq, time.time_ns())}, maxlen=STREAM_MAXLEN, approximate=True)


class Channels(System):
    ready = "open"
    authenticated = False
    origin = None

    def __init__(self, world, python, layer="pubsub"):
        self.world = world
        self.python = python
        self.layer = layer
        self.key = f"channels-{layer}"
        self.label = f"Channels (daphne, {layer} layer)"

    def env(self):
        return dict(
            self.world.env,
            DJANGO_SETTINGS_MODULE="channels_peer.settings",
            BENCH_REDIS_URL=self.world.redis_url,
            BENCH_CHANNEL_LAYER=self.layer,
        )

    def start(self):
        self.port = free_port()
        command = [self.python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "channels_peer.asgi:application"]
        self.server = self.world.server(self.label, command, self.port, env=self.env(), cwd=BENCH_DIR)
        self.server.wait_listening()
        self.publisher = ChannelsPublisher(self)
        return self.server


class ChannelsPublisher:
    """bench/channels_peer/publish.py in the peers' virtualenv: group_send, as an app would."""

    def __init__(self, system):
        self.process = subprocess.Popen(
            [system.python, str(BENCH_DIR / "channels_peer" / "publish.py")],
            cwd=BENCH_DIR, env=system.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def _ask(self, command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Channels publisher exited with {self.process.poll()}")
        return json.loads(line)

    def burst(self, seq, count):
        self._ask({"cmd": "burst", "seq": seq, "count": count})

    def paced(self, seq, count, rate):
        self._ask({"cmd": "paced", "seq": seq, "count": count, "rate": rate})

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
