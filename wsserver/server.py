"""
The relay's asyncio wiring: the WebSocket server, the Redis reader and the hub between them.

One process runs one event loop, one Redis reader (bus.follow) and one Hub. Connections
authenticate (auth.py), then live as a Client until they close.
"""

import asyncio
import logging
import signal
import threading
import time

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from notifications.conf import app_settings

from . import bus
from .auth import authenticate_first_message, check_handshake
from .client import Client
from .hub import Hub

logger = logging.getLogger(__name__)

AUTH_FAILED = 4001


class Relay:
    def __init__(self, hub):
        self.hub = hub

    async def handle(self, connection):
        address = connection.remote_address[0] if connection.remote_address else "?"
        identity = connection.identity
        if identity is None:
            try:
                identity = await authenticate_first_message(connection)
            except ConnectionClosed:
                return
        if identity is None:
            logger.info("Refused %s: authentication failed or missing", address)
            await connection.close(AUTH_FAILED, "Authentication failed or missing.")
            return
        client = Client(connection, identity, self.hub)
        started = time.monotonic()
        logger.info("Connected %s (user %s) from %s by %s", identity.user.get_username(), identity.user.pk, address, identity.method)
        try:
            await client.start()
            async for frame in connection:
                await client.handle(frame)
        except ConnectionClosed:
            pass
        finally:
            client.close()
            logger.info(
                "Disconnected %s (user %s) from %s: code %s after %.1f s",
                identity.user.get_username(), identity.user.pk, address, connection.close_code, time.monotonic() - started,
            )


async def run(host, port, ready=None):
    """Serve until SIGINT or SIGTERM; call ready(server) once listening."""
    redis = bus.connect()
    hub = Hub(await bus.latest_entry_id(redis))
    reader = asyncio.create_task(bus.follow(redis, hub.cursor, hub.deliver))
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    try:
        async with serve(
            Relay(hub).handle,
            host,
            port,
            process_request=check_handshake,
            compression=None,
            max_size=app_settings.WSSERVER_MAX_MESSAGE_SIZE,
            server_header=None,
        ) as server:
            if ready is not None:
                ready(server)
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, reader], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            logger.info("Shutting down: closing %d connection(s)", len(server.connections))
        if reader.done():
            # A relay that no longer reads events must not keep sockets open as if it did.
            raise RuntimeError("The Redis reader stopped") from reader.exception()
    finally:
        reader.cancel()
        await redis.aclose()
