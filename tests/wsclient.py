"""
Real WebSocket clients (the `websockets` library) with JSON helpers; every wait is bounded.

Proving that something does *not* arrive: a test makes the forbidden event happen, then a
control event the client *is* entitled to, and asserts the control is the next frame. Redis
stream order is delivery order, so a forbidden event delivered at all would have come first.
"""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

RECV_TIMEOUT = 5.0
OPEN_TIMEOUT = 5.0
ALLOWED_ORIGIN = "http://localhost"  # the relay runs with DEBUG and no ALLOWED_HOSTS (tests/relay.py)


class WSClient:
    def __init__(self, connection):
        self.connection = connection

    async def send(self, message):
        """Send a dict as JSON text; str and bytes go as they are (text and binary frames)."""
        if isinstance(message, dict):
            message = json.dumps(message)
        await self.connection.send(message)

    async def recv(self, timeout=RECV_TIMEOUT):
        """The next frame, parsed; fails the test after `timeout` seconds."""
        try:
            frame = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            pytest.fail(f"No frame received within {timeout} s.")
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
        assert frame["topics"] == list(topics)
        assert frame.get("ref") == ref
        return frame

    async def expect_close(self, code, timeout=RECV_TIMEOUT):
        """The server closes the connection with `code` before sending any other frame."""
        try:
            frame = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            pytest.fail(f"The connection was not closed within {timeout} s.")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, f"No close frame received: {closed}"
            assert closed.rcvd.code == code, f"Expected close code {code}, got {closed.rcvd.code} ({closed.rcvd.reason!r})"
            return closed.rcvd
        pytest.fail(f"Expected the connection to close with {code}, got the frame {frame!r}")

    async def close(self):
        await asyncio.wait_for(self.connection.close(), RECV_TIMEOUT)


class WSClients:
    """Opens connections to relays and closes them all at the end of the test."""

    def __init__(self):
        self.opened = []

    async def open(self, relay, cookie=None, origin=ALLOWED_ORIGIN, headers=None, path="/ws/", compression="deflate"):
        """
        A raw connection (no frame read yet); handshake rejections raise InvalidStatus. It offers
        permessage-deflate, as browsers do, unless `compression` is None.
        """
        all_headers = dict(headers or {})
        if cookie is not None:
            from django.conf import settings

            all_headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={cookie}"
        if origin is not None:
            all_headers["Origin"] = origin
        connection = await connect(
            f"ws://{relay.host}:{relay.port}{path}", additional_headers=all_headers, open_timeout=OPEN_TIMEOUT, close_timeout=2,
            compression=compression,
        )
        client = WSClient(connection)
        self.opened.append(client)
        return client

    async def with_cookie(self, relay, login, compression="deflate"):
        """Connect with `login`'s session cookie; returns (client, welcome frame)."""
        client = await self.open(relay, cookie=login.cookie, compression=compression)
        welcome = await client.expect("welcome")
        return client, welcome

    async def with_ticket(self, relay, ticket):
        """Connect without a cookie and authenticate with `ticket`; returns (client, welcome)."""
        client = await self.open(relay, origin=None)
        await client.send({"type": "auth", "token": ticket})
        welcome = await client.expect("welcome")
        return client, welcome

    async def close_all(self):
        for client in self.opened:
            try:
                await client.close()
            except (TimeoutError, ConnectionClosed, OSError):
                pass
        self.opened.clear()
