"""
The relay's asyncio wiring: the WebSocket server, the Redis reader and the hub between them,
plus the outbox drainer, the slow-client watchdog and the /healthz endpoint.

One process runs one event loop, one Redis reader (bus.follow) and one Hub. Connections
authenticate (auth.py), then live as a Client until they close.
"""

import asyncio
import json
import logging
import signal
import threading
import time
from collections import defaultdict
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response
from websockets.protocol import State

from notifications import outbox
from notifications.conf import app_settings
from notifications.topics import group_route

from . import bus, metrics, protocol
from .auth import (
    authenticate_first_message,
    check_handshake,
    client_address,
    identify_by_sessions,
)
from .batching import Batched
from .client import Client
from .hub import Hub
from .limits import ConnectionCaps, FloodGuard
from .replay import ReplayImpossible, last_published_cursor, stored_entries
from .threads import run_sync

logger = logging.getLogger(__name__)
# websockets' own log: at DEBUG it prints request headers (the session cookie), refused request
# lines (a ticket someone put in a URL) and frames (tickets). Capped at INFO, whatever the
# logging configuration says, so no setting can make the relay log a secret.
websockets_logger = logging.getLogger("wsserver.websockets")
websockets_logger.setLevel(logging.INFO)

AUTH_FAILED = 4001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
OUTBOX_INTERVAL = 1.0
SLOW_CLIENT_INTERVAL = 0.25
# Seconds a closing handshake may take; with SIGTERM, every socket closes within it.
CLOSE_TIMEOUT = 3


class Relay:
    def __init__(self, hub, redis):
        self.hub = hub
        self.redis = redis
        self.reader = None
        self.server = None
        self.clients = defaultdict(set)  # str(user pk) → its connected clients
        self.caps = ConnectionCaps()
        self.identify_session = Batched(lambda keys: run_sync(identify_by_sessions, keys))
        self._tasks = set()

    def control(self, fields):
        """A control message (notifications.revocation): re-check the connections it names."""
        if "user" in fields:
            targets = set(self.clients.get(fields["user"], ()))
        elif "group" in fields:
            targets = {connection.client for connection in self.hub.followers(group_route(fields["group"]))}
        else:
            return
        for client in targets:
            self.spawn(client.recheck())

    def recheck_all(self):
        """After Redis came back: control messages may have been lost with it."""
        for clients in self.clients.values():
            for client in clients:
                self.spawn(client.recheck())

    def spawn(self, coroutine):
        """Run a coroutine in the background, holding it until it ends (the loop keeps only weak references)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, connection):
        address = client_address(connection)
        if not self.caps.admit_ip(address):
            metrics.REFUSED.labels("connections_per_ip").inc()
            await connection.close(TRY_AGAIN_LATER, "Too many connections from your address.")
            return
        try:
            identity = connection.identity
            if identity is None:
                try:
                    identity = await authenticate_first_message(connection)
                except ConnectionClosed:
                    return
            if identity is None:
                logger.info("Refused %s: authentication failed or missing", address)
                metrics.REFUSED.labels("authentication").inc()
                await connection.close(AUTH_FAILED, "Authentication failed or missing.")
                return
            user_key = str(identity.user_id)
            if not self.caps.admit_user(user_key):
                metrics.REFUSED.labels("connections_per_user").inc()
                await connection.close(TRY_AGAIN_LATER, "Too many connections for this user.")
                return
            try:
                await self.serve_client(connection, identity, address)
            finally:
                self.caps.release_user(user_key)
        finally:
            self.caps.release_ip(address)

    async def serve_client(self, connection, identity, address):
        # Cookie, Origin and address are read: drop the handshake's headers (3-4 KiB a socket,
        # and the session cookie, which need not stay in memory for the connection's life).
        connection.request.headers.clear()
        connection.response.headers.clear()
        client = connection.client = Client(connection, identity, self.hub, self.redis)
        user_key = str(identity.user_id)
        self.clients[user_key].add(client)
        started = time.monotonic()
        logger.info("Connected %s (user %s) from %s by %s", identity.username, user_key, address, identity.method)
        metrics.CONNECTIONS.inc()
        try:
            await client.start()
            guard = FloodGuard()
            async for frame in connection:
                verdict = guard.admit()
                if verdict == "close":
                    metrics.REFUSED.labels("flood").inc()
                    await connection.close(POLICY_VIOLATION, "Too many messages.")
                elif verdict == "refuse":
                    metrics.REFUSED.labels("rate_limited").inc()
                    await connection.send(protocol.error("rate_limited", "Too many messages: slow down.", None))
                elif verdict == "accept" and guard.malformed(await client.handle(frame)):
                    metrics.REFUSED.labels("malformed").inc()
                    await connection.close(POLICY_VIOLATION, "Too many malformed frames.")
        except ConnectionClosed:
            pass
        finally:
            client.close()
            metrics.CONNECTIONS.dec()
            self.clients[user_key].discard(client)
            if not self.clients[user_key]:
                del self.clients[user_key]
            logger.info(
                "Disconnected %s (user %s) from %s: code %s after %.1f s",
                identity.username, user_key, address, connection.close_code, time.monotonic() - started,
            )

    async def process_request(self, connection, request):
        path = urlsplit(request.path).path
        if path == "/healthz":
            return self.health(connection)
        if path == "/metrics":
            body, content_type = metrics.render()
            return plain_response(HTTPStatus.OK, content_type, body)
        return await check_handshake(connection, request, self.identify_session)

    def health(self, connection):
        """200 while the relay reads Redis, 503 while it does not (load balancers drain it)."""
        state = self.reader
        body = {
            "status": "ok" if state.connected else "redis_unavailable",
            "redis": "up" if state.connected else "down",
            "redis_down_seconds": round(time.monotonic() - state.down_since, 1) if state.down_since else 0,
            "redis_reconnects": state.reconnects,
            "connections": len(self.server.connections) if self.server else 0,
            "cursor": self.hub.cursor,
        }
        status = HTTPStatus.OK if state.connected else HTTPStatus.SERVICE_UNAVAILABLE
        return plain_response(status, "application/json", json.dumps(body).encode() + b"\n")


def plain_response(status, content_type, content):
    """An HTTP response for the relay's own endpoints (not a WebSocket handshake)."""
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(content))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, content)


def database_recovery(hub):
    """recover() for bus.follow: lost entries from the database; past MAX_REPLAY, everyone resyncs."""

    async def recover(since, until):
        try:
            return await run_sync(stored_entries, since, until)
        except ReplayImpossible as error:
            logger.error("Events missing from the stream cannot be recovered (%s): clients resync", error)
            hub.resync_all()
            return []

    return recover


async def drain_outbox():
    """
    Publish committed events that missed Redis, once a second (see notifications.outbox). A
    failure that repeats (the database down, a migration not applied) is logged with its
    traceback once, then once a minute.
    """
    last_failure, last_logged = None, float("-inf")
    while True:
        await asyncio.sleep(OUTBOX_INTERVAL)
        try:
            published = await run_sync(outbox.drain)
        except Exception as error:
            if str(error) != last_failure:
                logger.exception("Could not drain the outbox")
                last_failure, last_logged = str(error), time.monotonic()
            elif time.monotonic() - last_logged > 60:
                logger.error("Still cannot drain the outbox: %s", error)
                last_logged = time.monotonic()
        else:
            last_failure = None
            if published:
                metrics.OUTBOX_PUBLISHED.inc(published)
                logger.info("Published %d event(s) from the outbox", published)


async def close_slow_clients(relay):
    """
    Close (1013) connections with more than WSSERVER_MAX_BUFFER bytes waiting to be sent: a
    client that stops reading costs at most that, plus what arrives before the next check. Only
    the hub's broadcasts write without waiting for the client, so there is nothing to look at
    (among maybe 10,000 idle sockets) until it made one.
    """
    limit = app_settings.WSSERVER_MAX_BUFFER
    checked_at = relay.hub.broadcasts
    while True:
        await asyncio.sleep(SLOW_CLIENT_INTERVAL)
        if relay.hub.broadcasts == checked_at:
            continue
        checked_at = relay.hub.broadcasts
        for clients in list(relay.clients.values()):
            for client in list(clients):
                connection = client.connection
                transport = connection.transport
                if connection.state is State.OPEN and transport is not None and transport.get_write_buffer_size() > limit:
                    logger.warning(
                        "Closing %s: too slow, %d bytes waiting to be sent",
                        connection.remote_address[0] if connection.remote_address else "?",
                        transport.get_write_buffer_size(),
                    )
                    metrics.SLOW_CLIENT_CLOSES.inc()
                    relay.spawn(connection.close(TRY_AGAIN_LATER, "Too slow to keep up: reconnect and resume."))


def run_forever(host, port, ready=None, reuse_port=False):
    """run() on an event loop: uvloop's when it is installed (faster handshakes and writes)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(host, port, ready, reuse_port))
    else:
        uvloop.run(run(host, port, ready, reuse_port))


async def run(host, port, ready=None, reuse_port=False):
    """
    Serve until SIGINT or SIGTERM; call ready(server) once listening. With reuse_port, other
    processes may listen on the same port (SO_REUSEPORT): the kernel spreads connections.
    """
    redis = bus.connect()
    hub = Hub()
    relay = Relay(hub, redis)
    reader_redis = bus.connect(single_connection=True)
    relay.reader = bus.StreamReader(reader_redis, hub.deliver, relay.control, database_recovery(hub), relay.recheck_all)
    hub.cursor = await relay.reader.start(lambda: run_sync(last_published_cursor))
    reader = asyncio.create_task(relay.reader.run())
    helpers = [asyncio.create_task(drain_outbox())]
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    try:
        async with serve(
            relay.handle,
            host,
            port,
            process_request=relay.process_request,
            compression=None,
            max_size=app_settings.WSSERVER_MAX_MESSAGE_SIZE,
            close_timeout=CLOSE_TIMEOUT,
            open_timeout=app_settings.WSSERVER_HANDSHAKE_TIMEOUT,
            reuse_port=reuse_port,
            logger=websockets_logger,
            server_header=None,
        ) as server:
            relay.server = server
            helpers.append(asyncio.create_task(close_slow_clients(relay)))
            if ready is not None:
                ready(server)
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, reader], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            logger.info("Shutting down: closing %d connection(s) with 1001", len(server.connections))
        if reader.done():
            # A relay that no longer reads events must not keep sockets open as if it did.
            raise RuntimeError("The Redis reader stopped") from reader.exception()
    finally:
        for task in (reader, *helpers):
            task.cancel()
        await redis.aclose()
        await reader_redis.aclose()
