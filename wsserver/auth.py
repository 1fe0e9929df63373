"""
Who is on the other end of a socket: the session cookie at the handshake, or a ticket.

Cookie handshakes are browsers sending their Django session automatically, which a hostile
page could also make them do (cross-site WebSocket hijacking). So a handshake that carries the
session cookie must come from an allowed Origin, or it is refused with 403 before any session
is read. Allowed: the hosts of ALLOWED_HOSTS (any port, http or https; with DEBUG and no
ALLOWED_HOSTS, localhost, 127.0.0.1 and [::1], as Django itself does) and the full origins of
WSSERVER_ALLOWED_ORIGINS. A handshake without a usable session waits for a ticket instead.
"""

import asyncio
import logging
import sys
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from notifications import cursors
from notifications.authorization import inbox_routes, inbox_routes_of
from notifications.conf import WEBSOCKET_PATH, app_settings
from notifications.links import allowed_hosts
from notifications.preferences import Reader, readers_of
from notifications.sessions import check_sessions
from notifications.tickets import check_ticket

from . import protocol
from .threads import run_sync

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """
    Who a connection is, as little as that takes: no user object stays in memory per socket
    (each subscribe and re-check loads the user afresh from the session anyway), and one string
    for each route that many sockets share (interned: "inbox:all", a group's).
    """

    user_id: object
    username: str
    session_key: str
    method: str  # "cookie" or "ticket"
    inbox_routes: frozenset
    joined_us: int | None  # when the user joined (date_joined): nothing older is theirs
    expires: float | None  # when the session expires (epoch seconds), when the engine says
    reader: Reader  # what the user muted and the language they chose (notifications.preferences), shared by most


@dataclass(frozen=True)
class Refused:
    """Credentials that prove nobody: which (cookie or ticket), and why."""

    method: str
    reason: str

    def __str__(self):
        return f"{'session cookie' if self.method == 'cookie' else 'ticket'}: {self.reason}"


def identify(check, session_key, method, routes, reader):
    user = check.user
    joined = getattr(user, "date_joined", None)
    return Identity(
        user.pk,
        user.get_username(),
        session_key,
        method,
        frozenset(map(sys.intern, routes)),
        cursors.epoch_us(joined) if joined else None,
        check.expires.timestamp() if check.expires else None,
        reader,
    )


def identify_by_sessions(session_keys):
    """
    {session key: Identity or Refused} for these sessions (ORM: in a thread). Batched
    (batching.Batched): a burst of handshakes costs one query for their sessions and one for
    their groups and one for their preferences, plus what get_user() costs each.
    """
    checks = check_sessions(session_keys)
    users = [check.user for check in checks.values() if check.user is not None]
    routes = inbox_routes_of(users)
    readers = readers_of([user.pk for user in users])
    return {
        key: identify(check, key, "cookie", routes[check.user.pk], readers[check.user.pk])
        if check.user is not None
        else Refused("cookie", check.refusal)
        for key, check in checks.items()
    }


def identify_by_ticket(ticket):
    check, session_key = check_ticket(ticket)
    if check.user is None:
        return Refused("ticket", check.refusal)
    return identify(check, session_key, "ticket", inbox_routes(check.user), readers_of([check.user.pk])[check.user.pk])


def origin_allowed(origin):
    if not origin:
        return False
    origin = origin.lower().rstrip("/")
    if origin in {o.lower().rstrip("/") for o in app_settings.WSSERVER_ALLOWED_ORIGINS}:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return False
    domain, _port = split_domain_port(parts.netloc)
    return bool(domain) and validate_host(domain, allowed_hosts())


def single_header(request, name):
    """A header's value; None when absent or sent more than once (ambiguous: trust neither)."""
    values = request.headers.get_all(name)
    return values[0] if len(values) == 1 else None


def session_key_from_cookies(header):
    """The session key in a Cookie header, parsed as Django parses it for its own requests."""
    return parse_cookie(header).get(settings.SESSION_COOKIE_NAME) if header else None


def client_address(connection):
    """
    The client's IP address: the socket's peer, or behind a proxy the last address of
    WSSERVER_CLIENT_IP_HEADER (the one the trusted proxy itself added).
    """
    header = app_settings.WSSERVER_CLIENT_IP_HEADER
    if header and connection.request is not None:
        value = single_header(connection.request, header)
        if value and value.split(",")[-1].strip():
            return value.split(",")[-1].strip()
    return connection.remote_address[0] if connection.remote_address else "?"


async def check_handshake(connection, request, identify_session):
    """
    websockets' process_request hook: refuse wrong paths (404), tickets in the URL (400) and
    cookie handshakes from foreign origins (403); judge a session cookie, as
    `await identify_session(key)` says (a Batched identify_by_sessions): connection.identity
    is who it proves, or None with connection.refused saying why.
    """
    connection.identity = connection.refused = None
    url = urlsplit(request.path)
    if url.path != WEBSOCKET_PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, "Not found: the WebSocket endpoint is /ws/.\n")
    if {"ticket", "token"} & parse_qs(url.query).keys():
        # URLs end up in logs and Referer headers: a ticket there is refused, and never logged.
        return connection.respond(HTTPStatus.BAD_REQUEST, "Send the ticket in the first message, not in the URL.\n")
    session_key = session_key_from_cookies(single_header(request, "Cookie"))
    if not session_key:
        return None
    origin = single_header(request, "Origin")
    if not origin_allowed(origin):
        logger.warning("Refused a cookie handshake from origin %r", origin)
        return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden: this Origin may not use the session cookie.\n")
    outcome = await identify_session(session_key)
    if isinstance(outcome, Identity):
        connection.identity = outcome
    else:
        connection.refused = outcome
    return None


async def authenticate_first_message(connection):
    """
    Wait for the ticket-mode `auth` message: the Identity it proves, Refused, or None when none
    came (nothing within WSSERVER_AUTH_TIMEOUT, or another message).
    """
    try:
        frame = await asyncio.wait_for(connection.recv(), app_settings.WSSERVER_AUTH_TIMEOUT)
        command = protocol.parse(frame, app_settings.WSSERVER_MAX_TOPICS)
    except (TimeoutError, protocol.ProtocolError):
        return None
    if not isinstance(command, protocol.Auth):
        return None
    return await run_sync(identify_by_ticket, command.token)


def refusal_reason(cookie, ticket, timeout):
    """Why a socket is refused (4001): what its cookie and its ticket proved. Names no secret."""
    parts = [str(cookie) if cookie is not None else "no session cookie"]
    parts.append(str(ticket) if isinstance(ticket, Refused) else f"no ticket as first message within {timeout:g} s")
    return "; ".join(parts)
