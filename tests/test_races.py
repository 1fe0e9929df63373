"""
Access that changes while a relay is deciding about it. A subscribe is authorized in a thread
and a handshake's identity is looked up before the connection is registered: a revocation that
commits meanwhile must still win. Each test widens the window (many sockets at once, each
subscribe carrying a hundred topics that each cost a query), strikes at random moments over
several trials and two relays, checks that the window was really hit, and then that nothing
published after the revocation reaches anyone it was revoked from.
"""

import asyncio
import random
import time

import pytest
from django.contrib.admin.models import CHANGE, LogEntry

from notifications import notify

from .aio import call, live_servers
from .factories import login, make_group, make_user

pytestmark = live_servers

TRIALS = 5
HANDSHAKE_TRIALS = 15  # its window is narrower: from an identity's lookup to the socket's registration
SOCKETS = 12  # per trial, over two relays
FORBIDDEN_TOPICS = 98  # object: topics the user may not see, each a query to refuse
USERS = 6
HANDSHAKES = 108  # per trial: 18 for each user, 9 on each relay (under WSSERVER_MAX_CONNECTIONS_PER_USER)
AFTER = "published after the revocation"
PACE = 0.35  # seconds per unsubscribe, subscribe and ping: under WSSERVER_RATE (10 a second)


@pytest.fixture
def two_relays(relay, relay_factory):
    return [relay, relay_factory()]


def admin_edit(group, title_marker):
    root = make_user("root", superuser=True)
    LogEntry.objects.log_actions(root.pk, [group], CHANGE, change_message=title_marker)


async def frames_until(client, title, timeout=10.0):
    """Every frame up to the event titled `title` (which must come), and when each arrived."""
    frames = []
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.recv(timeout=max(0.1, deadline - time.monotonic()))
        frames.append((time.monotonic(), frame))
        if frame["type"] == "event" and frame["event"]["title"] == title:
            return frames


async def keep_subscribing(client, forbidden, stop, in_flight):
    """
    Unsubscribe and subscribe again (with the forbidden topics), paced under the rate limit,
    until told to stop: the last thing done is a subscribe, answered. Records (sent, answered)
    times of each subscribe.
    """
    while True:
        started = time.monotonic()
        await client.send({"type": "unsubscribe", "topics": ["model:auth.group"]})
        await client.send({"type": "subscribe", "topics": ["model:auth.group", *forbidden], "ref": "race"})
        await client.send({"type": "ping", "ref": "answered"})
        while (await client.recv())["type"] != "pong":
            pass
        in_flight.append((started, time.monotonic()))
        if stop.is_set():
            return
        await asyncio.sleep(max(0.0, PACE - (time.monotonic() - started)))


async def test_a_subscribe_in_flight_during_a_revocation_is_not_applied_with_the_stale_answer(two_relays, ws_clients):
    forbidden = [f"object:auth.permission:{1_000_000 + n}" for n in range(FORBIDDEN_TOPICS)]  # each a query to refuse
    hits = 0
    for trial in range(TRIALS):
        user = await call(make_user, perms=["auth.view_group"])
        group = await call(make_group)
        clients = [(await ws_clients.with_cookie(two_relays[n % 2], await call(login, user)))[0] for n in range(SOCKETS)]
        stop, subscribes = asyncio.Event(), []
        loops = [asyncio.create_task(keep_subscribing(client, forbidden, stop, subscribes)) for client in clients]
        await asyncio.sleep(random.uniform(0.5, 1.5))
        await call(user.user_permissions.clear)
        revoked_at = time.monotonic()  # (the permission is gone: committed, on_commit run)
        stop.set()
        await asyncio.gather(*loops)
        hits += sum(sent < revoked_at < answered for sent, answered in subscribes)

        await call(admin_edit, group, AFTER)
        await call(notify, user, f"control {trial}")
        for client in clients:
            frames = await frames_until(client, f"control {trial}")
            leaked = [frame for _, frame in frames if frame["type"] == "event" and frame["topic"] == "model:auth.group"]
            assert not leaked, f"trial {trial}: {leaked}"
        await ws_clients.close_all()
    assert hits, "no subscribe was in flight when the revocation committed: the race was never run"


async def test_a_handshake_in_flight_during_a_group_change_does_not_keep_the_old_groups(two_relays, ws_clients):
    hits = 0
    for trial in range(HANDSHAKE_TRIALS):
        users = [await call(make_user) for _ in range(USERS)]
        group = await call(make_group, members=users)
        sessions = [await call(login, user) for user in users]

        async def connect(n):
            client, _ = await ws_clients.with_cookie(two_relays[n % 2], sessions[n % len(sessions)])
            return time.monotonic(), client

        opening = [asyncio.create_task(connect(n)) for n in range(HANDSHAKES)]
        await asyncio.sleep(random.uniform(0.0, 0.25))  # strike while identities are being looked up
        await call(group.user_set.clear)
        cleared_at = time.monotonic()
        opened = await asyncio.gather(*opening)
        hits += sum(welcomed_at > cleared_at for welcomed_at, _ in opened)

        await call(notify, group, AFTER)
        for user in users:
            await call(notify, user, f"control {trial}")
        for _, client in opened:
            frames = await frames_until(client, f"control {trial}")
            leaked = [frame for _, frame in frames if frame["type"] == "event" and frame["event"]["title"] == AFTER]
            assert not leaked, f"trial {trial}: {leaked}"
        await ws_clients.close_all()
    assert hits, "no handshake completed after the group changed: the race was never run"
