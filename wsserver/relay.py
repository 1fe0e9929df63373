"""
A relay process's connections: admitting them (the handshake, authentication, limits), serving
each as a Client until it closes, and telling them when access changed.

Access changes arrive as control messages (notifications.revocation); the connections they name
are held and re-checked (Client.access_changed). A connection whose identity was being looked
up when a control message arrived would miss it (it is not registered yet), so the relay keeps
the recent control messages (ControlLog) and re-checks a new connection at once when one of
them concerned it.
"""

import asyncio
import logging
import time
from collections import deque
from http import HTTPStatus
from urllib.parse import urlsplit

from django.db import DatabaseError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from notifications.conf import app_settings
from notifications.preferences import FIELD as PREFERENCES
from notifications.preferences import reader, reader_from_frame, readers_of
from notifications.presence import FIELD as PRESENCE
from notifications.presence import presence_route
from notifications.readstate import FIELD as READ
from notifications.rendering import browser_language, reader_language
from notifications.redisaddress import REDIS_ERRORS
from notifications.topics import group_route, user_route

from . import health, metrics, protocol
from .auth import (
    Identity,
    authenticate_first_message,
    check_handshake,
    client_address,
    identify_by_sessions,
    refusal_reason,
    single_header,
)
from .batching import Batched
from .client import Client, authorize_sessions
from .limits import ConnectionCaps, FloodGuard, ReplayGate
from .online import OnlineUsers
from .presence import Presence
from .threads import run_in_background, run_sync

logger = logging.getLogger(__name__)

CLOSE_REASON_BYTES = 123  # the most a close frame's reason may hold
RECHECK_BATCH = 200  # connections re-checked together (one query for their sessions)


class ControlLog:
    """The latest control messages, numbered, to tell what arrived while a handshake was under way."""

    def __init__(self, size=1_000):
        self.entries = deque(maxlen=size)
        self.count = 0

    def add(self, fields):
        self.count += 1
        self.entries.append((self.count, fields))

    def preferences_since(self, since, user_id):
        """The frame of the newest preferences change of this user after number `since`, or None."""
        for number, fields in reversed(self.entries):
            if number <= since:
                return None
            if fields.get(PREFERENCES) == str(user_id):
                return fields.get("frame", "")
        return None

    def concerns(self, since, identity):
        """Whether a control message after number `since` may concern this identity (or too many came to tell)."""
        if self.count - since > len(self.entries):
            return True
        for number, fields in reversed(self.entries):
            if number <= since:
                return False
            if fields.get("user") == str(identity.user_id):
                return True
            if "group" in fields and group_route(fields["group"]) in identity.inbox_routes:
                return True
        return False


class RelayConnection(ServerConnection):
    """
    websockets' server connection, with room for what the relay keeps on it: who it is
    (auth.check_handshake), the control messages seen before it (ControlLog) and its Client. In
    slots: attributes added to the library's object would give it a dictionary of its own
    (1.3 KiB a socket).
    """

    __slots__ = ("identity", "refused", "control_mark", "client", "language_hint")


def log_connection(message, *args):
    """
    logger.info from a frame of its own: logging looks up the frame that called it, and CPython
    then keeps a frame object (288 bytes) for as long as that frame runs, which for the coroutine
    serving a connection is as long as the connection lives.
    """
    logger.info(message, *args)


def log_failure(task):
    """Done-callback of background tasks: an exception is logged where it happened (a closed socket is no failure)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, ConnectionClosed):
        logger.error("%s failed", task.get_coro().__qualname__, exc_info=error)


class Relay:
    def __init__(self, hub, redis, diagnosis, metrics_here=True):
        self.hub = hub
        self.metrics_here = metrics_here  # False when WSSERVER_METRICS_ADDRESS serves /metrics
        self.redis = redis
        self.diagnosis = diagnosis
        self.server = None
        self.clients = set()  # every connected Client; a user's follow their inbox route (see control)
        self.caps = ConnectionCaps()
        self.replays = ReplayGate()
        self.controls = ControlLog()
        self.online = OnlineUsers(redis)  # who has a socket here, told to Redis (notifications.online)
        self.presence = Presence(redis, hub, self.online.relay_id, self.spawn)
        self.identify_session = Batched(lambda keys: run_sync(identify_by_sessions, keys))
        self._tasks = set()

    # Access changes ------------------------------------------------------------------------------

    def control(self, fields):
        """
        A control message (notifications.revocation): re-check the connections it names, found in
        the hub as the followers of the user's or the group's inbox route (every inbox follows
        its user's route), so the relay keeps no other index of them by user. A `read` message
        (notifications.readstate) carries a frame for the user's connections and changes no
        access: it is written to them, and not kept in the ControlLog. A `preferences` message
        carries the user's new mutes and language, and a frame (preferences_changed); it is kept in
        the log, for the connections whose handshake loaded the preferences it replaces.
        """
        if READ in fields:
            self.hub.send_unreplayed(user_route(fields[READ]), fields.get("frame", ""))
            return
        if PRESENCE in fields:
            self.hub.send_unreplayed(presence_route(fields[PRESENCE]), fields.get("frame", ""))
            return
        self.controls.add(fields)
        if PREFERENCES in fields:
            self.preferences_changed(fields[PREFERENCES], fields.get("frame", ""))
            return
        if "user" in fields:
            route = user_route(fields["user"])
        elif "group" in fields:
            route = group_route(fields["group"])
        else:
            return
        for client in {connection.client for connection in self.hub.followers(route)}:
            client.access_changed()

    def preferences_changed(self, user_id, frame):
        """
        A user changed their preferences (notifications.preferences): their connections here
        apply the mutes and language the message carries from now on (no query), and get it as a frame.
        """
        route = user_route(user_id)
        chosen = reader_from_frame(frame)
        for connection in self.hub.followers(route):
            self.set_reader(connection, chosen)
        self.hub.send_unreplayed(route, frame)

    def set_reader(self, connection, chosen):
        """
        How the connection reads, for the hub: what its user muted, and their language, else its
        browser's (the handshake's language cookie or Accept-Language), "" when that is the site's.
        """
        language = reader_language(chosen.language or connection.language_hint)
        self.hub.set_reader(connection, reader(chosen.mutes, "" if language == reader_language(None) else language))

    def recheck_all(self):
        """
        After Redis came back: control messages may have been lost with it. Everyone is looked at
        again, in batches, without holding their frames: nothing is known to have changed, and
        holding thousands of connections for the time it takes would stop their delivery.
        """
        self.spawn(self.recheck_clients(self.all_clients(), "reconnect"))

    async def recheck_clients(self, clients, cause, pause=0.0):
        """
        Re-check these connections RECHECK_BATCH sessions at a time (one query for their sessions,
        one for their users' preferences, then each user's permissions as a subscribe costs them:
        preferences changed without a control message, or whose message Redis lost, apply again),
        in a thread of their own so handshakes never wait behind them, `pause` seconds between
        batches. An answer is applied only if no access change was learnt of for that connection
        while it was computed (a control-driven re-check is then looking already).
        """
        for start in range(0, len(clients), RECHECK_BATCH):
            batch = clients[start : start + RECHECK_BATCH]
            requests, versions = {}, {}
            for client in batch:
                requests.setdefault(client.session_key, set()).update(client.subscriptions)
                versions[client] = client.access_version
            user_ids = list({client.identity.user_id for client in batch})
            mark = self.controls.count
            try:
                answers, readers = await run_in_background(lambda: (authorize_sessions(requests), readers_of(user_ids)))  # noqa: B023
            except DatabaseError as error:  # the database down: the next round will look again
                self.diagnosis.database_failed(error)
                return
            for client in batch:
                if not client.closed and self.controls.preferences_since(mark, client.identity.user_id) is None:
                    self.set_reader(client.connection, readers[client.identity.user_id])  # none newer came meanwhile
                check, results = answers[client.session_key]
                wanted = set(client.subscriptions)
                mine = [(name, outcome) for name, outcome in results if name in wanted]
                self.spawn(client.apply_recheck(check, mine, cause, versions[client]))
            await asyncio.sleep(pause)

    def all_clients(self):
        return list(self.clients)

    def spawn(self, coroutine):
        """Run a coroutine in the background, holding it until it ends (the loop keeps only weak references)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_failure)

    @property
    def background(self):
        """What spawn() runs now."""
        return list(self._tasks)

    # Handshakes ----------------------------------------------------------------------------------

    async def process_request(self, connection, request):
        """websockets' hook: the public /healthz (and /metrics unless served elsewhere), then the handshake checks."""
        path = urlsplit(request.path).path
        if path == "/healthz":
            return health.public_health(self.diagnosis)
        if path == "/metrics" and self.metrics_here:
            return health.metrics_response()
        connection.control_mark = self.controls.count
        connection.language_hint = browser_language(single_header(request, "Cookie"), single_header(request, "Accept-Language"))
        if not await self.diagnosis.ready():
            return health.unavailable()
        try:
            return await check_handshake(connection, request, self.identify_session)
        except DatabaseError as error:
            self.diagnosis.database_failed(error)
            return health.unavailable()

    async def handle(self, connection):
        """
        websockets' handler: admit the connection, then serve it as a Client until it closes, in
        this one coroutine waiting in recv() (not in `async for`, whose generator would wait
        beside it): a frame that waits for the life of a connection costs 0.3 KiB on every socket.
        """
        address = client_address(connection)
        identity = await self.admit(connection, address)
        if identity is None:
            return
        try:
            # Cookie, Origin and address are read: drop the handshake's headers (3-4 KiB a socket,
            # and the session cookie, which need not stay in memory for the connection's life),
            # and the response, which websockets no longer reads (the request must stay: it tells
            # websockets that the handshake is over).
            connection.request.headers.clear()
            connection.response = None
            client = connection.client = Client(
                connection, identity, self.hub, self.redis, self.spawn, self.replays, self.presence
            )
            self.clients.add(client)
            self.online.connected(identity.user_id)
            if self.controls.concerns(connection.control_mark, identity):
                client.access_changed()  # its identity was looked up before a change it must not miss
            # The preferences loaded with its identity, unless they changed while it was looked up.
            changed = self.controls.preferences_since(connection.control_mark, identity.user_id)
            self.set_reader(connection, identity.reader if changed is None else reader_from_frame(changed))
            started = time.monotonic()
            log_connection("Connected %s (user %s) from %s by %s", identity.username, identity.user_id, address, identity.method)
            metrics.CONNECTIONS.inc()
            try:
                await client.start()
                guard = FloodGuard()
                while True:
                    await self.answer(connection, client, guard, await connection.recv())
            except ConnectionClosed:
                pass
            except DatabaseError as error:
                self.diagnosis.database_failed(error)
                await connection.close(protocol.TRY_AGAIN_LATER, "Database unavailable: reconnect later.")
            finally:
                client.close()
                metrics.CONNECTIONS.dec()
                self.clients.discard(client)
                self.online.disconnected(identity.user_id)
                log_connection(
                    "Disconnected %s (user %s) from %s: code %s after %.1f s",
                    identity.username, identity.user_id, address, connection.close_code, time.monotonic() - started,
                )
        finally:
            self.caps.release_user(identity.user_id)
            self.caps.release_ip(address)

    async def admit(self, connection, address):
        """
        The connection's Identity, its places taken under the caps per address and per user;
        None once refused and closed, any place it took given back.
        """
        if not self.caps.admit_ip(address):
            metrics.REFUSED.labels("connections_per_ip").inc()
            await connection.close(protocol.TRY_AGAIN_LATER, "Too many connections from your address.")
            return None
        admitted = False
        try:
            identity = await self.authenticate(connection, address)
            if identity is None:
                return None
            if not self.caps.admit_user(identity.user_id):
                metrics.REFUSED.labels("connections_per_user").inc()
                await connection.close(protocol.TRY_AGAIN_LATER, "Too many connections for this user.")
                return None
            admitted = True
            return identity
        finally:
            if not admitted:
                self.caps.release_ip(address)

    async def authenticate(self, connection, address):
        """The connection's Identity (cookie, else a ticket in its first message); None once refused and closed."""
        if connection.identity is not None:
            return connection.identity
        try:
            outcome = await authenticate_first_message(connection)
        except ConnectionClosed:
            return None
        except (DatabaseError, *REDIS_ERRORS) as error:
            # The outage is named once, by the examination (the database) or the reader (Redis).
            if isinstance(error, DatabaseError):
                self.diagnosis.database_failed(error)
            logger.debug("Could not check the ticket of %s (%s): closed with 1013", address, error)
            await connection.close(protocol.TRY_AGAIN_LATER, "Cannot check tickets right now: try again later.")
            return None
        if isinstance(outcome, Identity):
            return outcome
        reason = refusal_reason(connection.refused, outcome, app_settings.WSSERVER_AUTH_TIMEOUT)
        logger.info("Refused %s: %s", address, reason)
        metrics.REFUSED.labels("authentication").inc()
        await connection.close(protocol.AUTH_FAILED, _fit(f"Authentication failed: {reason}."))
        return None

    async def answer(self, connection, client, guard, frame):
        """Answer a client's frame, within the limits of its FloodGuard."""
        verdict = guard.admit()
        if verdict == "close":
            metrics.REFUSED.labels("flood").inc()
            await connection.close(protocol.POLICY_VIOLATION, "Too many messages.")
        elif verdict == "refuse":
            metrics.REFUSED.labels("rate_limited").inc()
            await connection.send(protocol.error("rate_limited", "Too many messages: slow down.", None))
        elif verdict == "accept" and guard.malformed(await client.handle(frame)):
            metrics.REFUSED.labels("malformed").inc()
            await connection.close(protocol.POLICY_VIOLATION, "Too many malformed frames.")

    def detailed_health(self, reader):
        """/healthz where /metrics is served: what is wrong, in words, and the numbers behind it."""
        diagnosis = self.diagnosis
        body = {
            "status": "ok" if diagnosis.healthy else "unavailable",
            "problems": dict(diagnosis.problems),
            "redis": "up" if reader.connected else "down",
            "redis_down_seconds": diagnosis.down_for("redis"),
            "redis_reconnects": reader.reconnects,
            "connections": len(self.server.connections) if self.server else 0,
            "cursor": self.hub.cursor,
        }
        status = HTTPStatus.OK if diagnosis.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return health.json_response(status, body)


def _fit(reason):
    """A close reason cut to what a close frame holds (UTF-8, on a character boundary)."""
    encoded = reason.encode()
    if len(encoded) <= CLOSE_REASON_BYTES:
        return reason
    return encoded[: CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."
