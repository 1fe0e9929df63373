"""
The relay's asyncio wiring: the WebSocket server, the Redis reader and the hub between them,
and the background work beside them: the outbox drainer, the examination of the relay's
configuration (health.py), the periodic re-check of every connection, the slow-client watchdog,
keepalive pings (keepalive.py), telling Redis who is connected (online.py), and the operations
endpoints (/metrics and the detailed /healthz) on their own address when
WSSERVER_METRICS_ADDRESS is set.

One process runs one event loop, one Redis reader (bus.StreamReader) and one Hub. The server
listens at once, whatever state Redis and the database are in: /healthz says whether it can
serve, and handshakes get 503 until it can (health.Diagnosis). SIGINT and SIGTERM close every
socket with 1001, stop the background work and exit without a traceback.
"""

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from http import HTTPStatus
from urllib.parse import urlsplit

from django.db import DatabaseError
from websockets.asyncio.server import serve
from websockets.protocol import State

from notifications import cursors, outbox
from notifications.conf import app_settings

from . import bus, compression, health, metrics, protocol, push
from .addresses import parse_address
from .hub import Hub
from .keepalive import Keepalive
from .relay import RECHECK_BATCH, Relay, RelayConnection, log_failure
from .replay import ReplayImpossible, last_published_cursor, stored_entries
from .threads import run_sync

logger = logging.getLogger(__name__)
# websockets' own log: at DEBUG it prints request headers (the session cookie), refused request
# lines (a ticket someone put in a URL) and frames (tickets); at INFO, two lines for every
# connection and every /healthz probe, which the relay's own lines say better. Kept at WARNING,
# whatever the logging configuration says, so no setting can make the relay log a secret.
websockets_logger = logging.getLogger("wsserver.websockets")
websockets_logger.setLevel(logging.WARNING)

OUTBOX_INTERVAL = 1.0
SLOW_CLIENT_INTERVAL = 0.25
# Seconds a closing handshake may take; with SIGTERM, every socket closes within it.
CLOSE_TIMEOUT = 3
# Connections the kernel queues until the relay accepts them (asyncio's default: 100). When a
# reconnect storm overflows the queue, the kernel drops the SYNs and clients retry a second later.
LISTEN_BACKLOG = 1024
# Seconds the background work and the Redis clients get to stop, once the sockets are closed.
STOP_WAIT = 1.0
LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def database_recovery(hub):
    """recover() for the reader: lost entries from the database; past MAX_REPLAY, everyone resyncs."""

    async def recover(since, until):
        try:
            return await run_sync(stored_entries, since, until)
        except ReplayImpossible as error:
            logger.error("Events missing from the stream cannot be recovered (%s): clients resync", error)
            hub.resync_all()
            return []

    return recover


async def drain_outbox(diagnosis):
    """
    Publish committed events that missed Redis, once a second (see notifications.outbox). The
    database failing is the examination's to name; another failure that repeats is logged once,
    then once a minute.
    """
    last_failure, last_logged = None, float("-inf")
    while True:
        await asyncio.sleep(OUTBOX_INTERVAL)
        try:
            published = await run_sync(outbox.drain)
        except DatabaseError as error:
            diagnosis.database_failed(error)
        except bus.REDIS_DOWN:
            pass  # the reader names Redis outages
        except Exception as error:
            if str(error) != last_failure or time.monotonic() - last_logged > 60:
                logger.error("Could not drain the outbox: %s", str(error).strip() or type(error).__name__)
                last_failure, last_logged = str(error), time.monotonic()
        else:
            last_failure = None
            metrics.OUTBOX_PUBLISHED.inc(published)


async def examine_periodically(diagnosis, redis, hub):
    """health.examine at start, then every few seconds (more often while something is wrong)."""
    while True:
        diagnosis.wake.clear()  # a failure from here on asks for the next examination
        try:
            await health.examine(diagnosis, redis, run_sync, lambda: cursors.position(hub.cursor))
        except Exception:
            logger.exception("Could not examine the relay's configuration")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(diagnosis.wake.wait(), diagnosis.next_examination)


async def recheck_periodically(relay, interval):
    """
    Every `interval` seconds, every connection's session and topics looked at again, for changes
    that send no signal (QuerySet.update(), raw SQL, rows deleted in bulk), in batches spread
    over the interval (Relay.recheck_clients).
    """
    while True:
        started = time.monotonic()
        clients = relay.all_clients()
        batches = -(-len(clients) // RECHECK_BATCH)
        try:
            await relay.recheck_clients(clients, "periodic", pause=interval / (batches + 1))
        except Exception:
            logger.exception("Could not re-check connections (tried again in %s s)", interval)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


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
        for client in relay.all_clients():
            connection = client.connection
            transport = connection.transport
            if connection.state is State.OPEN and transport is not None and transport.get_write_buffer_size() > limit:
                logger.warning(
                    "Closing %s: too slow, %d bytes waiting to be sent",
                    connection.remote_address[0] if connection.remote_address else "?",
                    transport.get_write_buffer_size(),
                )
                metrics.SLOW_CLIENT_CLOSES.inc()
                relay.spawn(connection.close(protocol.TRY_AGAIN_LATER, "Too slow to keep up: reconnect and resume."))


def log_to_stderr_unless_configured():
    """
    The relay's connections are logged at INFO, as runserver logs its requests, without any
    LOGGING setting: the app's loggers get a stderr handler unless the site's logging
    configuration already handles them.
    """
    for name in ("wsserver", "notifications"):
        named = logging.getLogger(name)
        if not named.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            named.addHandler(handler)
            if named.level == logging.NOTSET:
                named.setLevel(logging.INFO)


def run_forever(host, port, ready=None, reuse_port=False):
    """run() on an event loop: uvloop's when it is installed (faster handshakes and writes)."""
    log_to_stderr_unless_configured()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(host, port, ready, reuse_port))
    else:
        uvloop.run(run(host, port, ready, reuse_port))


def ops_endpoints(relay, reader):
    """process_request of the operations address: /metrics and the detailed /healthz, nothing else."""

    async def answer(connection, request):
        path = urlsplit(request.path).path
        if path == "/metrics":
            return health.metrics_response()
        if path == "/healthz":
            return relay.detailed_health(reader)
        return health.plain_response(HTTPStatus.NOT_FOUND, "text/plain", b"Not found: /metrics or /healthz.\n")

    return answer


async def never_serve(connection):
    """The operations address answers HTTP only (its process_request always responds)."""


async def run(host, port, ready=None, reuse_port=False):
    """
    Serve until SIGINT or SIGTERM; call ready(server) once listening. With reuse_port, other
    processes may listen on the same port (SO_REUSEPORT): the kernel spreads connections.
    """
    diagnosis = health.Diagnosis()
    redis = bus.connect()
    reader_redis = bus.connect(single_connection=True)
    hub = Hub()
    ops_address = app_settings.WSSERVER_METRICS_ADDRESS
    relay = Relay(hub, redis, diagnosis, metrics_here=not ops_address)
    reader = bus.StreamReader(
        reader_redis, hub.deliver, relay.control, database_recovery(hub), relay.recheck_all, diagnosis, hub.backlog
    )

    def started(cursor):
        hub.cursor = cursor
        diagnosis.reading.set()

    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    reading = asyncio.create_task(reader.run(lambda: run_sync(last_published_cursor), started))
    helpers = [drain_outbox(diagnosis), examine_periodically(diagnosis, redis, hub), close_slow_clients(relay), relay.online.run(), relay.presence.run()]
    if push.enabled():
        helpers.append(push.PushSender(redis).run())
    if app_settings.WSSERVER_RECHECK_INTERVAL:
        helpers.append(recheck_periodically(relay, app_settings.WSSERVER_RECHECK_INTERVAL))
    if app_settings.WSSERVER_PING_INTERVAL:
        keepalive = Keepalive(app_settings.WSSERVER_PING_INTERVAL, relay.spawn)
        helpers.append(keepalive.run(lambda: relay.server.connections if relay.server else ()))
    helpers = [asyncio.create_task(helper) for helper in helpers]
    for helper in helpers:
        helper.add_done_callback(log_failure)  # they run until cancelled: ending otherwise is a bug
    options = dict(reuse_port=reuse_port, logger=websockets_logger, server_header=None)
    try:
        async with contextlib.AsyncExitStack() as servers:
            server = relay.server = await servers.enter_async_context(
                serve(
                    relay.handle,
                    host,
                    port,
                    process_request=relay.process_request,
                    create_connection=RelayConnection,
                    **compression.serve_options(),
                    max_size=app_settings.WSSERVER_MAX_MESSAGE_SIZE,
                    close_timeout=CLOSE_TIMEOUT,
                    open_timeout=app_settings.WSSERVER_HANDSHAKE_TIMEOUT,
                    ping_interval=None,  # one task pings every socket (keepalive.py)
                    backlog=LISTEN_BACKLOG,
                    **options,
                )
            )
            if ops_address:
                ops_host, ops_port = parse_address(ops_address)
                await servers.enter_async_context(
                    serve(never_serve, ops_host, ops_port, process_request=ops_endpoints(relay, reader), **options)
                )
            if ready is not None:
                ready(server)
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, reading], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            logger.info("Shutting down: closing %d connection(s) with 1001", len(server.connections))
        if reading.done() and not reading.cancelled() and reading.exception() is not None:
            # A relay that no longer reads events must not keep sockets open as if it did.
            raise RuntimeError("The Redis reader stopped") from reading.exception()
    finally:
        await stop_tasks([reading, *helpers, *relay.background], [redis, reader_redis], relay.online.clear)


async def stop_tasks(tasks, clients, farewell):
    """
    Cancel the background work and wait for it, so that nothing outlives the loop (or complains
    that its exception was never retrieved), then `await farewell()` (within STOP_WAIT seconds,
    Redis permitting), then close the Redis clients. A task still running
    after STOP_WAIT seconds (a blocking read redis-py has not given up yet) gets STOP_WAIT more
    once its client is closed; one still running then is named in the log and left behind, and
    the relay exits all the same.
    """
    for task in tasks:
        task.cancel()
    pending = await _wait_for_tasks(tasks)
    with contextlib.suppress(TimeoutError, *bus.REDIS_DOWN):
        await asyncio.wait_for(farewell(), STOP_WAIT)
    for client in clients:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.aclose(), STOP_WAIT)
    for task in await _wait_for_tasks(pending):
        logger.warning("Left behind at shutdown, still running: %s", task.get_coro().__qualname__)


async def _wait_for_tasks(tasks):
    """Those of the tasks still running after STOP_WAIT seconds; the others' exceptions retrieved."""
    if not tasks:
        return set()
    done, pending = await asyncio.wait(tasks, timeout=STOP_WAIT)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: it ended the relay, or was logged (log_failure)
    return pending
