"""
The load client: one implementation that drives every system under test the same way.

A worker process holds many WebSocket connections to one server and records, for every frame
carrying a benchmark payload (bench/payload.py), its sequence number and the time it arrived.
run.py starts a few workers (LoadClients, below) and steers them with JSON lines on stdin;
each answers with one JSON line on stdout:

    {"cmd": "connect", "url": "ws://127.0.0.1:8765/ws/", "origin": "http://localhost",
     "cookies": ["sessionid=..."] | null, "count": 500, "concurrency": 100, "ready": "welcome" | "open",
     "source": "127.0.0.2" | null,            the local address to connect from (null: any)
     "compression": false}                   true: offer permessage-deflate, as browsers do
    {"cmd": "window", "lo": 0, "hi": 2000}    count deliveries of seqs in [lo, hi), from now
    {"cmd": "wait", "timeout": 30, "latencies": false}
                                              until every connection has every seq of the window;
                                              with the closes since the previous wait
    {"cmd": "close"}

"ready" is what makes a connection count as connected: the handshake's 101 ("open"), or, for
this project's relay, its `welcome` frame (authenticated, subscribed to its inbox). "source"
spreads connections over loopback addresses: one address has about 28,000 ephemeral ports for
one server port, so 100,000 connections need several (all of 127.0.0.0/8 is loopback on Linux).

Each wait reports the bytes the window's connections received (`bytes`: WebSocket frames as they
crossed the socket, headers included, compressed where permessage-deflate was negotiated; the
raw backend only) and how many connections negotiated compression (`compressed`).

Three implementations of the client side of WebSocket, chosen with --backend:
- "raw" (default): asyncio Protocols that do the opening handshake (RFC 6455, with the
  Sec-WebSocket-Accept check) and then parse frames in data_received, answering pings and
  closes; about 6 µs of CPU per frame under uvloop, kernel included. The relays send over
  100,000 frames a second, and on two cores the load client must keep up with one of them on
  the other core, or it would measure itself.
- "stamped": the same protocol, each socket read with recvmsg() and the kernel's receive
  timestamp (SO_TIMESTAMPNS, StampedTransport below): a frame's time is when it reached the
  socket, however late this process gets to read it. With --nice 19 the load clients yield the
  cores to the server while it writes, as clients on other machines would, and their late reads
  cost the measurement nothing; the time of each read is kept too (`reads`).
- "websockets": the websockets library's asyncio client, `async for` over each connection.
  The same accounting, 1.25× the CPU per frame (bench/run.py's load client check, and
  docs/performance.md). Use it to check that "raw" reads the same numbers.

uvloop is used when importable (--loop asyncio to compare).
"""

import argparse
import array
import asyncio
import base64
import functools
import hashlib
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from payload import MARKER  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # removed from each compressed message by the sender (RFC 7692)
CLOSE_TIMEOUT = 10  # seconds the load client processes get to close their connections
time_ns = time.time_ns
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value; Python's socket module does not name it
TIMESPEC = struct.Struct("qq")  # the timestamp: seconds, nanoseconds
READ_SIZE = 256 * 1024
MAX_FRAME_HEADER = 10  # a server's frame header: 2 bytes, and 2 or 8 of extended length
ANCILLARY_SIZE = 64


def now_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Window:
    """What is being counted: seqs in [lo, hi), delivered to each of `connections`."""

    def __init__(self, lo, hi, connections):
        self.lo, self.hi = lo, hi
        self.width = hi - lo
        self.expected = self.width * len(connections)
        self.deliveries = 0
        self.duplicates = 0
        self.first_ns = self.last_ns = 0
        self.latencies = array.array("q")  # µs, arrival time - send time, one per delivery
        self.reads = array.array("q")  # µs, when this process read it - send time (later than arrival: "stamped")
        self.exact = array.array("b")  # 0 where the arrival time is only an upper bound (StampedTransport)
        self.done = asyncio.Event()
        if self.expected == 0:
            self.done.set()
        for connection in connections:
            connection.got = bytearray(self.width)

    def record(self, connection, seq, ts, now):
        index = seq - self.lo
        if 0 <= index < self.width:
            got = connection.got
            if got[index]:
                self.duplicates += 1
                return
            got[index] = 1
            self.deliveries += 1
            if not self.first_ns:
                self.first_ns = now
            self.last_ns = now
            self.latencies.append((now - ts) // 1000)
            self.reads.append((time_ns() - ts) // 1000)
            self.exact.append(connection.stamp_exact)
            if self.deliveries == self.expected:
                self.done.set()


class Worker:
    def __init__(self):
        self.connections = []
        self.window = Window(0, 0, [])
        self.frames = 0  # every frame with a payload marker, in or out of the window
        self.other_frames = 0
        self.closed = {}  # close code → count, for connections the server closed

    def record(self, connection, seq, ts, now):
        self.frames += 1
        self.window.record(connection, seq, ts, now)

    def closed_by_server(self, code):
        self.closed[code] = self.closed.get(code, 0) + 1


class RawConnection(asyncio.Protocol):
    """One WebSocket client connection: handshake, then frames parsed straight from the socket."""

    def __init__(self, worker, request, accept, ready_on_welcome, ready):
        self.worker = worker
        self.request = request
        self.accept = accept
        self.ready_on_welcome = ready_on_welcome
        self.ready = ready  # future: None once ready, or an error message
        self.transport = None
        self.upgraded = False
        self.buffer = b""
        self.got = None
        self.close_code = None
        self.received = 0  # bytes, frames and headers as they came
        self.inflater = None  # a zlib decompressor once permessage-deflate is negotiated
        self.fresh_context = False  # server_no_context_takeover: a new decompressor for each message
        self.stamp_exact = True  # False while the data being parsed may carry a later segment's time (StampedTransport)

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_result(f"connection lost during the handshake ({exc or 'closed'})")
        elif self.close_code is None:
            self.worker.closed_by_server(1006)

    def data_received(self, data):
        self.arrived(data, time_ns())

    def arrived(self, data, now):
        """`data` reached the socket at `now` (ns since the epoch)."""
        self.received += len(data)
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            head, data = data[:end], data[end + 4 :]
            self._check_response(head)
            if not self.upgraded:
                return
        self._frames(data, now)

    def _check_response(self, head):
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if len(status) < 2 or status[1] != b"101":
            self.ready.set_result(f"HTTP {b' '.join(status[1:]).decode(errors='replace')}")
            self.transport.close()
        elif headers.get(b"sec-websocket-accept") != self.accept:
            self.ready.set_result("bad Sec-WebSocket-Accept")
            self.transport.close()
        else:
            self.upgraded = True
            extensions = headers.get(b"sec-websocket-extensions", b"").decode()
            if extensions.startswith("permessage-deflate"):
                self.inflater = zlib.decompressobj(-15)  # 15 bits decode any window the server chose
                self.fresh_context = "server_no_context_takeover" in extensions
            if not self.ready_on_welcome:
                self.ready.set_result(None)

    def _frames(self, data, now):
        """RFC 6455 frames from the server (never masked); data frames go to _data, a close to _closed."""
        size = len(data)
        pos = 0
        while size - pos >= 2:
            first, second = data[pos], data[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                header = 10
            start = pos + header
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            if (opcode == 1 or opcode == 2) and first & 0x40:  # RSV1: a compressed message
                message = self._inflate(data[start:end])
                self._data(message, 0, len(message), now)
            elif opcode == 1 or opcode == 2:
                self._data(data, start, end, now)
            elif opcode == 9:  # ping: pong with the same data (client frames are masked)
                self._send(0xA, data[start:end])
            elif opcode == 8:  # close: record the code, answer
                self.close_code = int.from_bytes(data[start : start + 2], "big") if length >= 2 else 1005
                self._closed(data[start + 2 : end].decode(errors="replace"))
                self._send(0x8, data[start : start + 2])
                self.transport.close()
                return
            pos = end
        if pos < size:
            self.buffer = data[pos:]

    @property
    def compressed(self):
        return self.inflater is not None

    def _inflate(self, payload):
        if self.fresh_context:
            self.inflater = zlib.decompressobj(-15)
        return self.inflater.decompress(payload + DEFLATE_TAIL)

    def _data(self, data, start, end, now):
        match = MARKER.search(data, start, end)
        if match is not None:
            self.worker.record(self, int(match[1]), int(match[2]), now)
            return
        self.worker.other_frames += 1
        if self.ready_on_welcome and not self.ready.done():
            if data.find(b'"type":"welcome"', start, end) >= 0:
                self.ready.set_result(None)
            else:
                self.ready.set_result("first frame was not welcome: " + data[start:end][:200].decode(errors="replace"))

    def _closed(self, reason):
        self.worker.closed_by_server(self.close_code)
        if not self.ready.done():
            self.ready.set_result(f"closed with {self.close_code}: {reason}")

    def _send(self, opcode, payload):
        # Masking key 0: masked bytes equal the payload. RFC 6455 wants unpredictable keys
        # against proxy cache poisoning; there are no proxies here.
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    @property
    def open(self):
        return self.transport is not None and not self.transport.is_closing()

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.close_code = 1000
            self._send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


def handshake(url, origin, cookie, compression=False):
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if compression:
        lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept


async def open_raw(worker, url, origin, cookie, ready_on_welcome, timeout, source=None, compression=False, stamped=False):
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    request, accept = handshake(url, origin, cookie, compression)
    ready = loop.create_future()
    connection = RawConnection(worker, request, accept, ready_on_welcome, ready)
    sock = source_socket(source)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (parts.hostname, parts.port))
            if stamped:
                StampedTransport(loop, sock, connection)
            else:
                await loop.create_connection(lambda: connection, sock=sock)
        error = await asyncio.wait_for(ready, timeout)
    except (OSError, TimeoutError) as exc:
        sock.close()
        return None, f"{type(exc).__name__}: {exc}"
    if error is not None:
        connection.close()
        return None, error
    return connection, None


def frame_size(head):
    """The size of the server frame (unmasked) whose first bytes are `head`, or None if they do not say it yet."""
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    if length < 126:
        return 2 + length
    header = 4 if length == 126 else 10
    if len(head) < header:
        return None
    return header + int.from_bytes(head[2:header], "big")


def source_socket(source):
    """
    A non-blocking TCP socket, bound to the address `source` if given, its port left for
    connect() to pick by the whole address and port pair (IP_BIND_ADDRESS_NO_PORT). bind() with
    port 0 looks for a port free for every destination, a search that grows with the ports in
    use: with 10,000 connections from one address, most of the load client's CPU went to the
    kernel finding ports.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
    sock.setblocking(False)
    return sock


class StampedTransport:
    """
    The part of an asyncio transport RawConnection uses, over a connected socket read with
    recvmsg() and the kernel's receive timestamp (SO_TIMESTAMPNS): TCP gives the arrival time of
    the last segment a read returns, taken when the segment reached the socket (on loopback,
    inside the sender's write). RawConnection.arrived() gets that time, not the read's.

    Once the connection is upgraded, each read takes one WebSocket frame (its length peeked
    from its header), so each frame gets the time of its own segment: the server writes a frame
    at once. Were two frames read together, the first would get the second's time: a keepalive
    ping that came after an event, while a lowered-priority load client had not read it yet.
    That can still happen: TCP merges a segment into the previous one while that one waits
    unread in the socket, and the merged one takes the later time. So a frame read while more
    bytes wait behind it is marked (`stamp_exact` False): its time is an upper bound.
    """

    def __init__(self, loop, sock, protocol):
        self._loop, self._sock, self._protocol = loop, sock, protocol
        self._fd = sock.fileno()
        self._unsent = b""
        self._closing = False
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        loop.add_reader(self._fd, self._readable)
        protocol.connection_made(self)

    def _readable(self):
        try:
            size = READ_SIZE
            if self._protocol.upgraded and not self._protocol.buffer:
                size = frame_size(self._sock.recv(MAX_FRAME_HEADER, socket.MSG_PEEK)) or READ_SIZE
            data, ancillary, _, _ = self._sock.recvmsg(size, ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._lost(error)
            return
        if not data:
            self._lost(None)
            return
        arrival = 0
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = TIMESPEC.unpack_from(value)
                arrival = seconds * 1_000_000_000 + nanoseconds
        try:
            self._protocol.stamp_exact = not (arrival and self._sock.recv(1, socket.MSG_PEEK))
        except (BlockingIOError, InterruptedError):
            self._protocol.stamp_exact = True
        except OSError:
            self._protocol.stamp_exact = False
        self._protocol.arrived(data, arrival or time_ns())

    def write(self, data):
        if self._closing:
            return
        if not self._unsent:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as error:
                self._lost(error)
                return
            data = data[sent:]
            if data:
                self._loop.add_writer(self._fd, self._writable)
        self._unsent += data

    def _writable(self):
        try:
            sent = self._sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._lost(error)
            return
        self._unsent = self._unsent[sent:]
        if not self._unsent:
            self._loop.remove_writer(self._fd)

    def is_closing(self):
        return self._closing

    def close(self):
        """Close now: what is left unsent (a close frame the peer did not read) is dropped."""
        self._lost(None)

    abort = close

    def _lost(self, error):
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, error)


class LibraryConnection:
    """The same, through the websockets library's client."""

    def __init__(self, worker, websocket):
        self.worker = worker
        self.websocket = websocket
        self.got = None
        self.task = None
        self.received = 0  # not counted: the library reads the socket
        self.compressed = bool(websocket.protocol.extensions)

    async def read(self):
        from websockets.exceptions import ConnectionClosed

        search = MARKER.search
        try:
            async for frame in self.websocket:
                now = time_ns()
                if isinstance(frame, str):
                    frame = frame.encode()
                match = search(frame)
                if match is not None:
                    self.worker.record(self, int(match[1]), int(match[2]), now)
                else:
                    self.worker.other_frames += 1
        except ConnectionClosed:
            pass
        code = self.websocket.close_code
        if code is not None and code != 1000:
            self.worker.closed_by_server(code)

    @property
    def open(self):
        return self.websocket.close_code is None

    def close(self):
        if self.task is not None:
            self.task.cancel()
        asyncio.ensure_future(self.websocket.close())


async def open_library(worker, url, origin, cookie, ready_on_welcome, timeout, source=None, compression=False):
    from websockets.asyncio.client import connect

    try:
        websocket = await connect(
            url,
            origin=origin,
            additional_headers={"Cookie": cookie} if cookie else None,
            compression="deflate" if compression else None,
            open_timeout=timeout,
            max_queue=None,
            local_addr=(source, 0) if source else None,
        )
        if ready_on_welcome:
            frame = await asyncio.wait_for(websocket.recv(), timeout)
            if '"type":"welcome"' not in frame:
                await websocket.close()
                return None, f"first frame was not welcome: {frame[:200]}"
            worker.other_frames += 1
    except Exception as exc:  # InvalidStatus, ConnectionClosed, OSError, TimeoutError
        return None, f"{type(exc).__name__}: {exc}"
    connection = LibraryConnection(worker, websocket)
    connection.task = asyncio.get_running_loop().create_task(connection.read())
    return connection, None


async def connect_all(worker, opener, command):
    """Open `count` connections, `concurrency` handshakes at a time; per-connection timings."""
    cookies = command.get("cookies")
    count = command["count"]
    semaphore = asyncio.Semaphore(command.get("concurrency", 100))
    timeout = command.get("timeout", 60)
    ready_on_welcome = command.get("ready") == "welcome"
    durations, errors = [], {}
    started = time.monotonic()
    finished = [started]

    async def one(index):
        async with semaphore:
            began = time.monotonic()
            connection, error = await opener(
                worker, command["url"], command.get("origin"), cookies[index] if cookies else None, ready_on_welcome, timeout,
                command.get("source"),
                command.get("compression", False),
            )
            finished[0] = max(finished[0], time.monotonic())
        if error is None:
            worker.connections.append(connection)
            durations.append(time.monotonic() - began)
        else:
            errors[error] = errors.get(error, 0) + 1

    cpu = now_cpu()
    await asyncio.gather(*(one(index) for index in range(count)))
    return {
        "connected": len(durations),
        "errors": errors,
        "elapsed": finished[0] - started,
        "started": started,
        "cpu": now_cpu() - cpu,
        "durations": sorted(durations),
    }


def answer(message):
    """One JSON line on stdout, for the controller."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def commands(limit=64 * 1024 * 1024):
    """The controller's commands, one JSON object a line on stdin, until it closes it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield json.loads(line)


def lower_priority(niceness):
    """
    Add `niceness` to this process's nice value, and to its autogroup's. Linux gives each
    session an autogroup (CONFIG_SCHED_AUTOGROUP, on in Debian's kernels) and shares the CPU
    between autogroups before the processes inside them: a nice value only ranks a process
    within its group. Each load client runs in a session of its own (start_new_session), so
    without its autogroup's nice value seven load clients get seven shares to the relay's one.
    """
    if not niceness:
        return
    os.nice(niceness)
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(niceness))
    except OSError:  # no autogroups: the nice value alone decides
        pass


async def serve(backend):
    worker = Worker()
    opener = {"raw": open_raw, "stamped": functools.partial(open_raw, stamped=True), "websockets": open_library}[backend]
    window_cpu = window_started = 0.0
    window_bytes = 0
    async for command in commands():
        kind = command["cmd"]
        if kind == "connect":
            answer(await connect_all(worker, opener, command))
        elif kind == "window":
            worker.window = Window(command["lo"], command["hi"], worker.connections)
            worker.frames = worker.other_frames = 0
            window_cpu, window_started = now_cpu(), time.monotonic()
            window_bytes = sum(connection.received for connection in worker.connections)
            answer({"ok": True})
        elif kind == "wait":
            window = worker.window
            try:
                await asyncio.wait_for(window.done.wait(), command.get("timeout", 30))
            except TimeoutError:
                pass
            result = {
                "expected": window.expected,
                "deliveries": window.deliveries,
                "duplicates": window.duplicates,
                "first_ns": window.first_ns,
                "last_ns": window.last_ns,
                "frames": worker.frames,
                "other_frames": worker.other_frames,
                "closed": worker.closed,
                "connections": len(worker.connections),
                "open": sum(connection.open for connection in worker.connections),
                "cpu": now_cpu() - window_cpu,
                "wall": time.monotonic() - window_started,
                "bytes": sum(connection.received for connection in worker.connections) - window_bytes,
                "compressed": sum(connection.compressed for connection in worker.connections),
            }
            if command.get("latencies"):
                result["latencies"] = base64.b64encode(window.latencies.tobytes()).decode()
                result["reads"] = base64.b64encode(window.reads.tobytes()).decode()
                result["exact"] = base64.b64encode(window.exact.tobytes()).decode()
            worker.closed = {}  # each close is told once, by the next wait
            answer(result)
        elif kind == "close":
            for connection in worker.connections:
                connection.close()
            await asyncio.sleep(0.2)
            answer({"closed": len(worker.connections)})
            break


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["raw", "stamped", "websockets"], default="raw")
    parser.add_argument("--nice", type=int, default=0, help="added to this process's niceness (os.nice)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller stops us
    lower_priority(args.nice)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            args.loop = "asyncio"
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args.backend))


# --- The controller side, used by run.py and connections.py --------------------------------


class LoadClients:
    """
    `workers` load client processes, each with its share of the connections; the i-th connects
    from sources[i] when given (a loopback address of its own: see "source" above).
    """

    def __init__(self, python, workers=2, backend="raw", loop="uvloop", log=None, sources=None, nice=0):
        self.sources = sources or [None] * workers
        self.processes = []
        for _ in range(workers):
            self.processes.append(
                subprocess.Popen(
                    [python, __file__, "--backend", backend, "--loop", loop, "--nice", str(nice)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log or sys.stderr,
                    text=True,
                    start_new_session=True,
                )
            )

    @property
    def pids(self):
        return [process.pid for process in self.processes]

    def _ask(self, commands, timeout=None):
        """Each process's answer to its command; RuntimeError if one exits or is not done within `timeout` s."""
        for process, command in zip(self.processes, commands):
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        answers = []
        for process in self.processes:
            if deadline is not None and not select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise RuntimeError(f"load client {process.pid} did not answer within {timeout} s")
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"load client {process.pid} exited (code {process.poll()})")
            answers.append(json.loads(line))
        return answers

    def connect(self, url, count, cookies=None, origin=None, ready="open", concurrency=100, timeout=60, compression=False):
        """Open `count` connections across the workers (the i-th with cookies[i]); merged stats."""
        shares = [count // len(self.processes) + (i < count % len(self.processes)) for i in range(len(self.processes))]
        commands, offset = [], 0
        for share, source in zip(shares, self.sources):
            commands.append(
                {
                    "cmd": "connect", "url": url, "origin": origin, "count": share, "ready": ready, "source": source,
                    "cookies": cookies[offset : offset + share] if cookies else None,
                    "concurrency": max(1, concurrency // len(self.processes)), "timeout": timeout,
                    "compression": compression,
                }
            )
            offset += share
        answers = self._ask(commands)
        errors = {}
        for answer in answers:
            for error, n in answer["errors"].items():
                errors[error] = errors.get(error, 0) + n
        return {
            "connected": sum(a["connected"] for a in answers),
            "errors": errors,
            "elapsed": max(a["started"] + a["elapsed"] for a in answers) - min(a["started"] for a in answers),
            "cpu": sum(a["cpu"] for a in answers),
            "durations": sorted(d for a in answers for d in a["durations"]),
        }

    def window(self, lo, hi):
        self._ask([{"cmd": "window", "lo": lo, "hi": hi}] * len(self.processes))

    def wait(self, timeout, latencies=False):
        """Merged counts of the window: deliveries, duplicates, first and last arrival, CPU, closes, connections open."""
        answers = self._ask([{"cmd": "wait", "timeout": timeout, "latencies": latencies}] * len(self.processes))
        merged = {
            "expected": sum(a["expected"] for a in answers),
            "deliveries": sum(a["deliveries"] for a in answers),
            "duplicates": sum(a["duplicates"] for a in answers),
            "frames": sum(a["frames"] for a in answers),
            "other_frames": sum(a["other_frames"] for a in answers),
            "first_ns": min((a["first_ns"] for a in answers if a["first_ns"]), default=0),
            "last_ns": max(a["last_ns"] for a in answers),
            "cpu": [a["cpu"] for a in answers],
            "wall": max(a["wall"] for a in answers),
            "bytes": sum(a["bytes"] for a in answers),
            "compressed": sum(a["compressed"] for a in answers),
            "open": sum(a["open"] for a in answers),
            "closed": {},
        }
        for answer in answers:
            for code, n in answer["closed"].items():
                merged["closed"][code] = merged["closed"].get(code, 0) + n
        if latencies:
            for key, kind in (("latencies", "q"), ("reads", "q"), ("exact", "b")):
                values = array.array(kind)
                for answer in answers:
                    values.frombytes(base64.b64decode(answer[key]))
                merged[key] = values
        return merged

    def close(self):
        """Close the connections politely, unless a process is still busy (interrupted mid-command): then kill."""
        try:
            self._ask([{"cmd": "close"}] * len(self.processes), timeout=CLOSE_TIMEOUT)
        except (OSError, ValueError, RuntimeError):
            pass
        finally:
            self.kill()

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()


if __name__ == "__main__":
    main()
