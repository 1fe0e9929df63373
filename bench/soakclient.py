"""
The soak test's load client: one process of bench/soak.py's fleet (it starts one or two).

It holds thousands of long-lived authenticated sockets, one user each, that reconnect with
exponential backoff and full jitter after every disconnection and resume from their last
cursor, as the widget does, recording every event they receive; and it opens a steady stream of
short-lived ones on top (connect, welcome, stay a few seconds, close). The handshake and the
control frames are bench/loadclient.py's raw-protocol client (RawConnection): on two cores the
load client must cost little next to the relays it measures. Only this project's frames are
read differently: an event frame's cursor and event id come from one regular expression, other
frames (rare) go through json.

The controller steers it with JSON lines on stdin; each gets one JSON line back on stdout:

    {"cmd": "start", "urls": [...], "origin": "http://localhost", "clock": <monotonic start>,
     "clients": [[index, user_id, cookie], ...], "ramp": 500,
     "churn": {"rate": 10, "stay": [1, 5]}}                          start everything, answer at once
    {"cmd": "status"}                                                counts so far
    {"cmd": "catch_up", "targets": {"<index>": position}, "timeout": 30}
                                              until every client holds its target position (or not)
    {"cmd": "report", "path": "..."}          every client's frames and connections, and how long
                                              each welcome took, pickled there
    {"cmd": "stop"}                           close every socket, answer, exit

Time is seconds on the controller's clock (time.monotonic() is the same clock in every
process), so frames and connections read with the controller's log of faults.
"""

import argparse
import asyncio
import json
import pickle
import random
import re
import resource
import signal
import sys
import time
from array import array
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]  # loadclient; notifications.cursors

from loadclient import RawConnection, answer, commands, handshake, now_cpu  # noqa: E402

from notifications.cursors import SEQUENCES_PER_MS  # noqa: E402

# protocol.event(): {"type":"event","topic":<json string>,"cursor":"<ms>-<seq>","event":{"id":<id>,...
EVENT = re.compile(rb'\{"type":"event","topic":"(?:[^"\\]|\\.)*","cursor":"((\d+)-(\d+))","event":\{"id":(\d+)[,}]')
ERRORS_KEPT = 5  # per client: the first few are enough to see what went wrong
CLOSE_WAIT = 2.0  # seconds a closing socket may take before it is dropped
# The widget's reconnection (widget.js: BACKOFF_BASE_MS, BACKOFF_CAP_MS), not chaos.py's quicker one:
# how 10,000 browsers would come back after a relay dies.
BACKOFF_BASE, BACKOFF_CAP = 1.0, 30.0
# A browser waits for a socket far longer than these; they only bound every wait here. How long
# welcomes took is reported (welcome_seconds, in the report), so a slow relay shows without them.
OPEN_TIMEOUT = 10.0
WELCOME_TIMEOUT = 30.0


class SoakConnection(RawConnection):
    """
    One socket: loadclient's handshake and control frames; its text frames go to its owner (a
    long-lived SoakClient or a ShortLived one), which is told of the welcome before any frame
    after it is read, so a resume goes out ahead of anything else.
    """

    def __init__(self, owner, request, accept, ready, lost):
        super().__init__(owner, request, accept, True, ready)
        self.owner = owner
        self.lost = lost  # future: the close code (1006 when none came) once the socket is gone
        self.welcomed = False

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_result(f"connection lost during the handshake ({type(exc).__name__ if exc else 'closed'})")
        if not self.lost.done():
            self.lost.set_result(self.close_code or 1006)

    def _data(self, data, start, end, now):
        self._text(data, start, end)  # the relay sends text frames only

    def _closed(self, reason):
        if not self.ready.done():
            self.ready.set_result(f"closed with {self.close_code} before welcome: {reason}")

    def _text(self, data, start, end):
        match = EVENT.match(data, start, end)
        if match is not None:
            if self.welcomed:
                self.owner.event(self, match)
            else:
                self._refuse("an event before welcome")
            return
        try:
            frame = json.loads(data[start:end])
        except ValueError:
            self.owner.error(f"unreadable frame {data[start:end][:200]!r}")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if not self.welcomed:
            if kind == "welcome":
                self.welcomed = True
                self.owner.welcome(self, frame["cursor"])
                self.ready.set_result(None)
            else:
                self._refuse(f"first frame was not welcome: {str(frame)[:200]}")
        else:
            self.owner.other(self, kind, frame)

    def _refuse(self, reason):
        if not self.ready.done():
            self.ready.set_result(reason)
        self.owner.error(reason)
        self.close()

    def send_text(self, text):
        """A client text frame (masked with a zero key, as loadclient's control frames are)."""
        payload = text.encode()
        if len(payload) >= 126:
            raise ValueError("only short client frames are sent here")
        self.transport.write(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)


async def open_socket(fleet, relay, cookie, owner):
    """
    (SoakConnection after its welcome, None) or (None, why not): bounded by OPEN_TIMEOUT and
    WELCOME_TIMEOUT. How long the welcome took goes to the fleet's record.
    """
    loop = asyncio.get_running_loop()
    began = time.monotonic()
    url = fleet.urls[relay]
    parts = urlsplit(url)
    request, accept = handshake(url, fleet.origin, cookie)
    ready, lost = loop.create_future(), loop.create_future()
    try:
        _, connection = await asyncio.wait_for(
            loop.create_connection(lambda: SoakConnection(owner, request, accept, ready, lost), parts.hostname, parts.port),
            OPEN_TIMEOUT,
        )
    except (OSError, TimeoutError) as error:
        return None, type(error).__name__
    try:
        error = await asyncio.wait_for(ready, WELCOME_TIMEOUT)
    except TimeoutError:
        error = "no welcome in time"
    if error is not None:
        connection.transport.abort()
        return None, error
    fleet.welcome_seconds.append(time.monotonic() - began)
    return connection, None


class SoakClient:
    """
    One user's long-lived socket, kept open until the fleet stops, and everything it received:
    event ids and positions in arrival order (arrays: an hour of frames fits), and for each
    frame the connection it came on and when.
    """

    def __init__(self, fleet, index, user_id, cookie):
        self.fleet = fleet
        self.index, self.user_id, self.cookie = index, user_id, cookie
        self.cursor = None  # the last event's, or the first welcome's: where a resume starts
        self.highest = 0
        self.ids, self.positions = array("q"), array("q")
        self.connection_of, self.arrived = array("l"), array("d")
        self.connections = []  # dicts: relay, opened, welcome, resumed_from, closed, close_code, frames
        self.resyncs = 0
        self.resynced_on = []  # the connections (indexes) on which a resync came
        self.errors = []
        self.error_count = 0
        self.failed = Counter()  # why connection attempts failed
        self.connected = False
        self.socket = None  # the open SoakConnection, if any

    async def run(self, delay):
        """
        Stay connected until the fleet stops. After a failure, wait with exponential backoff and
        full jitter, then try the next relay; after a connection that worked, start again from
        this client's own relay (chaos.ChaosClient's policy, which is the widget's).
        """
        await asyncio.sleep(delay)
        attempt = 0
        while not self.fleet.stopping:
            relay = (self.index + attempt) % len(self.fleet.urls)
            opened = self.fleet.now()
            connection, error = await open_socket(self.fleet, relay, self.cookie, self)
            if connection is None:
                self.failed[error] += 1
                self.fleet.failed[error] += 1
                attempt += 1
            else:
                record = self.connections[-1]
                record["relay"], record["opened"] = relay, opened
                self.socket = connection
                code = await connection.lost
                self.connected, self.socket = False, None
                record["closed"], record["close_code"] = self.fleet.now(), code
                attempt = 0
            if not self.fleet.stopping:
                await asyncio.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))

    def welcome(self, connection, cursor):
        record = {
            "relay": None, "opened": None, "welcome": cursor, "resumed_from": "", "closed": None, "close_code": None,
            "frames": 0,
        }  # chaos.Connection's fields
        self.connections.append(record)
        if self.cursor is None:
            self.cursor = cursor
        else:
            record["resumed_from"] = self.cursor
            connection.send_text(json.dumps({"type": "resume", "cursor": self.cursor}))
        self.connected = True

    def event(self, connection, match):
        position = int(match[2]) * SEQUENCES_PER_MS + int(match[3])
        self.ids.append(int(match[4]))
        self.positions.append(position)
        self.connection_of.append(len(self.connections) - 1)
        self.arrived.append(self.fleet.now())
        self.connections[-1]["frames"] += 1
        self.cursor = match[1].decode()
        if position > self.highest:
            self.highest = position
        self.fleet.frames += 1

    def other(self, connection, kind, frame):
        if kind == "resync":
            self.resyncs += 1
            self.resynced_on.append(len(self.connections) - 1)
        else:
            self.error(f"unexpected frame {str(frame)[:200]}")

    def error(self, message):
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(f"{self.fleet.now():.2f} s: {message}")

    def report(self):
        return {
            "index": self.index, "user_id": self.user_id, "ids": self.ids, "positions": self.positions,
            "connection_of": self.connection_of, "arrived": self.arrived, "connections": self.connections,
            "resyncs": self.resyncs, "resynced_on": self.resynced_on, "errors": self.errors,
            "error_count": self.error_count, "failed": dict(self.failed),
        }


class ShortLived:
    """The owner of one short-lived socket: counts what it receives, reports protocol errors to the fleet."""

    def __init__(self, fleet):
        self.fleet = fleet

    def welcome(self, connection, cursor):
        pass

    def event(self, connection, match):
        self.fleet.churn["frames"] += 1

    def other(self, connection, kind, frame):
        if kind != "resync":
            self.error(f"unexpected frame {str(frame)[:200]}")

    def error(self, message):
        self.fleet.churn_errors[message[:120]] += 1


class Fleet:
    """This process's sockets: the long-lived clients, the stream of short-lived ones, the counts."""

    def __init__(self, command):
        self.urls = command["urls"]
        self.origin = command["origin"]
        self.clock = command["clock"]
        self.stopping = False
        self.frames = 0
        self.clients = [SoakClient(self, index, user_id, cookie) for index, user_id, cookie in command["clients"]]
        self.churn = Counter()  # opened, welcomed, frames, closed-by-client, skipped
        self.churn_failed = Counter()  # why a short-lived socket did not get its welcome
        self.churn_closed_early = Counter()  # close codes of short-lived sockets the relay closed
        self.churn_errors = Counter()
        self.failed = Counter()  # why long-lived clients' connection attempts failed
        self.welcome_seconds = array("f")  # from connecting to welcome, every socket that got one
        self.short_sockets = set()
        self.tasks = set()
        ramp = command.get("ramp") or 500
        for n, client in enumerate(self.clients):
            self.spawn(client.run(n / ramp))
        churn = command.get("churn")
        if churn and churn["rate"] > 0 and self.clients:
            self.spawn(self.churn_stream(churn["rate"], churn["stay"], [client.cookie for client in self.clients]))

    def now(self):
        return time.monotonic() - self.clock

    def spawn(self, coroutine):
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def churn_stream(self, rate, stay, cookies):
        """
        `rate` short-lived sockets a second, evenly spaced, each a second tab of one of this
        process's users, over the relays in turn; at most `rate * stay[1] * 2` open at once.
        """
        started, n = time.monotonic(), 0
        open_at_most = max(1, int(rate * stay[1] * 2))
        while not self.stopping:
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            if self.churn["open"] >= open_at_most:
                self.churn["skipped"] += 1
                continue
            self.spawn(self.short_lived(n % len(self.urls), random.choice(cookies), random.uniform(*stay)))

    async def short_lived(self, relay, cookie, stay):
        self.churn["opened"] += 1
        self.churn["open"] += 1
        connection = None
        try:
            connection, error = await open_socket(self, relay, cookie, ShortLived(self))
            if connection is None:
                self.churn_failed[error] += 1
                return
            self.churn["welcomed"] += 1
            self.short_sockets.add(connection)
            try:
                code = await asyncio.wait_for(asyncio.shield(connection.lost), stay)
            except TimeoutError:
                connection.close()
                self.churn["closed-by-client"] += 1
                try:
                    await asyncio.wait_for(connection.lost, CLOSE_WAIT)
                except TimeoutError:
                    connection.transport.abort()
            else:
                self.churn_closed_early[code] += 1
        finally:
            self.churn["open"] -= 1
            self.short_sockets.discard(connection)

    def status(self):
        clients = self.clients
        return {
            "clients": len(clients),
            "connected": sum(client.connected for client in clients),
            "frames": self.frames,
            "connections": sum(len(client.connections) for client in clients),
            "resyncs": sum(client.resyncs for client in clients),
            "errors": sum(client.error_count for client in clients),
            "failed": dict(self.failed),
            "churn": dict(self.churn),
            "churn_failed": dict(self.churn_failed),
            "churn_closed_early": {str(code): n for code, n in self.churn_closed_early.items()},
            "churn_errors": dict(self.churn_errors),
            "welcomes": len(self.welcome_seconds),
            "cpu": now_cpu(),
        }

    def welcome_times(self):
        """How long each welcome took (seconds), sorted: for the report's percentiles."""
        return sorted(self.welcome_seconds)

    async def catch_up(self, targets, timeout):
        """Until every client holds the position it was given (bounded); the indexes still behind."""
        wanted = [(client, targets.get(str(client.index), 0)) for client in self.clients]
        deadline = time.monotonic() + timeout
        while True:
            behind = [client.index for client, target in wanted if client.highest < target]
            if not behind or time.monotonic() > deadline:
                return behind
            await asyncio.sleep(0.2)

    async def stop(self):
        """Close every socket, long-lived and short-lived, then end what is left of the tasks (bounded)."""
        self.stopping = True
        sockets = [client.socket for client in self.clients if client.socket is not None] + list(self.short_sockets)
        for connection in sockets:
            connection.close()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=CLOSE_WAIT + 1)
        for task in list(self.tasks):
            task.cancel()
        for connection in sockets:
            if not connection.transport.is_closing():
                connection.transport.abort()


async def serve():
    """Answer the controller's commands, one JSON line each, until `stop` or the end of stdin."""
    fleet = None
    async for command in commands(limit=256 * 1024 * 1024):
        kind = command["cmd"]
        if kind == "start":
            fleet = Fleet(command)
            answer({"ok": True})
        elif kind == "status":
            answer(fleet.status())
        elif kind == "catch_up":
            answer({"behind": await fleet.catch_up(command["targets"], command["timeout"])})
        elif kind == "report":
            with open(command["path"], "wb") as file:
                records = {"clients": [client.report() for client in fleet.clients], "welcome_seconds": fleet.welcome_times()}
                pickle.dump(records, file, protocol=pickle.HIGHEST_PROTOCOL)
            answer({"ok": True})
        elif kind == "stop":
            break
    if fleet is not None:
        await fleet.stop()
    answer({"stopped": True})


def main():
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller stops us
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve())


if __name__ == "__main__":
    main()
