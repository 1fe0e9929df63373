"""
A real WebSocket client for tests (the `websockets` library), with JSON helpers and bounded
waits: connect as a user, await their events.

Proving that something does *not* arrive: make the forbidden thing happen, then something the
client *is* entitled to, and assert that this comes next. The relay delivers in Redis stream
order, so a forbidden event delivered at all would have come first.
"""

import asyncio
import json

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

RECV_TIMEOUT = 5.0
OPEN_TIMEOUT = 5.0


class WSClient:
    def __init__(self, connection):
        self.connection = connection

    async def send(self, message):
        """Send a dict as JSON text; str and bytes go as they are (text and binary frames)."""
        if isinstance(message, dict):
            message = json.dumps(message)
        await self.connection.send(message)

    async def recv(self, timeout=RECV_TIMEOUT):
        """The next frame, parsed; AssertionError after `timeout` seconds."""
        try:
            frame = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            raise AssertionError(f"No frame received within {timeout} s.") from None
        assert isinstance(frame, str), f"Expected a text frame, got {frame!r}"
        return json.loads(frame)

    async def expect(self, frame_type, timeout=RECV_TIMEOUT):
        frame = await self.recv(timeout)
        assert frame["type"] == frame_type, f"Expected a {frame_type!r} frame, got {frame}"
        return frame

    async def expect_event(self, title=None, timeout=RECV_TIMEOUT):
        """The next frame, which must be an event (titled `title`, if given)."""
        frame = await self.expect("event", timeout)
        if title is not None:
            assert frame["event"]["title"] == title, f"Expected the event {title!r} next, got {frame}"
        return frame

    async def subscribe(self, topics, ref=None):
        """Subscribe and expect the `subscribed` answer listing every topic."""
        message = {"type": "subscribe", "topics": list(topics)}
        if ref is not None:
            message["ref"] = ref
        await self.send(message)
        frame = await self.expect("subscribed")
        assert frame["topics"] == list(topics), f"Expected {list(topics)} subscribed, got {frame}"
        assert frame.get("ref") == ref
        return frame

    async def expect_close(self, code, timeout=RECV_TIMEOUT):
        """The server closes the connection with `code` before sending any other frame."""
        try:
            frame = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            raise AssertionError(f"The connection was not closed within {timeout} s.") from None
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, f"No close frame received: {closed}"
            assert closed.rcvd.code == code, f"Expected close code {code}, got {closed.rcvd.code} ({closed.rcvd.reason!r})"
            return closed.rcvd
        raise AssertionError(f"Expected the connection to close with {code}, got the frame {frame!r}")

    async def close(self):
        await asyncio.wait_for(self.connection.close(), RECV_TIMEOUT)


async def open_connection(url, headers=None, compression="deflate"):
    """A raw connection to a relay's ws:// URL (no frame read yet); handshake rejections raise InvalidStatus."""
    connection = await connect(url, additional_headers=headers or {}, open_timeout=OPEN_TIMEOUT, close_timeout=2, compression=compression)
    return WSClient(connection)


def ticket_for(user):
    """
    A ticket for `user` (ORM: call it in a thread from async code), as the ticket endpoint gives
    one: bound to a session opened for them, as for an API client (notifications.ticketauth).
    """
    from notifications.ticketauth import open_api_session
    from notifications.tickets import issue_ticket

    return issue_ticket(user, open_api_session(user))


def _ticket_in_thread(user):
    """ticket_for() from a thread of its own, whose database connection is closed after."""
    from django.db import connections

    try:
        return ticket_for(user)
    finally:
        connections.close_all()


async def connect_as(url, user):
    """A client authenticated as `user` on the relay at `url`, past its `welcome` (client.welcome)."""
    ticket = await asyncio.to_thread(_ticket_in_thread, user)
    client = await open_connection(url)
    await client.send({"type": "auth", "token": ticket})
    client.welcome = await client.expect("welcome")
    return client
