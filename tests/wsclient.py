"""
Real WebSocket clients for the suite: notifications.testing.client's WSClient (what a site's
tests use too), opened with a cookie, a ticket or raw, and all closed at the end of a test.
"""

from websockets.exceptions import ConnectionClosed

from notifications.testing.client import RECV_TIMEOUT, WSClient, open_connection

__all__ = ["RECV_TIMEOUT", "WSClient", "WSClients"]

ALLOWED_ORIGIN = "http://localhost"  # the relay runs with DEBUG and no ALLOWED_HOSTS (tests/relay.py)


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
        client = await open_connection(f"ws://{relay.host}:{relay.port}{path}", all_headers, compression)
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
