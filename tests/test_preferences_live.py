"""
Preferences through a real relay: a change made over HTTP reaches every socket of that user as
a `preferences` frame within a second, and no one else's; from then on the events it mutes
arrive flagged `"muted": true`, as the feed flags them, on sockets open before the change and
on those opened after it.
"""

import json
import time

from notifications import announce, notify

from .aio import call, live_servers
from .factories import fetch_ticket, login, make_user

pytestmark = live_servers

URL = "/notifications/api/preferences/"
LIST = "/notifications/api/notifications/"
WITHIN = 1.0  # seconds: every tab and device is told within a second


def patch(session, data):
    response = session.client.patch(URL, json.dumps(data), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def feed_flags(session):
    return {item["title"]: item["muted"] for item in session.client.get(LIST).json()["results"]}


async def expect_preferences(client, expected):
    started = time.monotonic()
    frame = await client.expect("preferences", timeout=WITHIN + 1)
    assert time.monotonic() - started < WITHIN, "not within a second"
    assert frame == {"type": "preferences", "preferences": expected}, frame


async def test_a_change_reaches_the_users_sockets_and_mutes_from_then_on(relay, ws_clients):
    user, other = await call(make_user), await call(make_user, "other")
    session = await call(login, user)
    by_cookie, _ = await ws_clients.with_cookie(relay, session)
    by_ticket, _ = await ws_clients.with_ticket(relay, await call(fetch_ticket, await call(login, user)))
    theirs, _ = await ws_clients.with_cookie(relay, await call(login, other))

    body = await call(patch, session, {"muted_kinds": ["announcement"], "toasts": False})
    for client in (by_cookie, by_ticket):
        await expect_preferences(client, body["preferences"])

    await call(announce, "muted for me")
    await call(notify, user, "not muted")
    for client in (by_cookie, by_ticket):
        muted = await client.expect_event("muted for me")
        assert muted["muted"] is True
        assert "muted" not in await client.expect_event("not muted")
    # The other user was told nothing, and mutes nothing: the announcement comes first, unflagged.
    assert "muted" not in await theirs.expect_event("muted for me")

    # A socket opened after the change knows it from the start; the feed flags the same events.
    late, _ = await ws_clients.with_cookie(relay, session)
    await call(announce, "muted again")
    assert (await late.expect_event("muted again"))["muted"] is True
    assert await call(feed_flags, session) == {"muted again": True, "not muted": False, "muted for me": True}

    # Unmuted: told again, and the next announcement is not flagged.
    body = await call(patch, session, {"muted_kinds": None})
    await expect_preferences(late, body["preferences"])
    await call(announce, "heard")
    assert "muted" not in await late.expect_event("heard")
