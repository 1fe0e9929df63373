"""
Read state everywhere: marking read (the HTTP API, or mark_read() / mark_all_read() from code)
sends a `read` frame to every connection of that user, through a real relay, and to no one
else; and a client that follows the frame's rule keeps a badge equal to the feed's count while
new notifications commit at the same moment.
"""

import asyncio
import random
import threading
import time

import pytest
from django.db import connections, transaction

from notifications import feed, mark_all_read, mark_read, notify
from notifications.models import Event

from .aio import call, live_servers
from .factories import fetch_ticket, login, make_user

pytestmark = live_servers

READ_ALL = "/notifications/api/read-all/"
WITHIN = 1.0  # seconds: every tab and device is told within a second


def read_url(event):
    return f"/notifications/api/notifications/{event.pk}/read/"


def post(session, url):
    response = session.client.post(url)
    assert response.status_code == 200, response.content
    return response.json()


async def connected_twice(relay, ws_clients, user):
    """Two connections of `user`: a page's (its cookie) and a device's (a ticket), past their welcome."""
    session = await call(login, user)
    by_cookie, _ = await ws_clients.with_cookie(relay, session)
    by_ticket, _ = await ws_clients.with_ticket(relay, await call(fetch_ticket, await call(login, user)))
    return session, [by_cookie, by_ticket]


async def expect_read(client, **expected):
    started = time.monotonic()
    frame = await client.expect("read", timeout=WITHIN + 1)
    assert time.monotonic() - started < WITHIN, "not within a second"
    assert frame == {"type": "read", "topic": "inbox", **expected}, frame
    return frame


async def test_marking_one_read_tells_every_connection_of_the_user_and_no_one_else(relay, ws_clients):
    user, other = await call(make_user), await call(make_user, "other")
    first, second = await call(notify, user, "first"), await call(notify, user, "second")
    session, mine = await connected_twice(relay, ws_clients, user)
    theirs, _ = await ws_clients.with_cookie(relay, await call(login, other))

    assert (await call(post, session, read_url(first)))["unread_count"] == 1
    for client in mine:
        await expect_read(client, ids=[first.pk], up_to=None, unread_count=1, latest=second.pk)

    # The other user got nothing: their next frame is what comes after.
    await call(notify, other, "theirs")
    await theirs.expect_event("theirs")


async def test_read_all_tells_every_connection_of_the_user(relay, ws_clients):
    user, other = await call(make_user), await call(make_user, "other")
    await call(notify, user, "one")
    newest = await call(notify, user, "two")
    session, mine = await connected_twice(relay, ws_clients, user)
    theirs, _ = await ws_clients.with_cookie(relay, await call(login, other))
    await call(notify, other, "not to be marked")  # a newer event, someone else's
    await theirs.expect_event("not to be marked")
    up_to = await call(lambda: Event.objects.latest("pk").pk)

    assert (await call(post, session, READ_ALL))["unread_count"] == 0
    for client in mine:
        await expect_read(client, ids=None, up_to=up_to, unread_count=0, latest=up_to)
    assert up_to > newest.pk
    await call(notify, other, "after")
    await theirs.expect_event("after")


async def test_the_python_api_tells_after_commit_and_not_after_a_rollback(relay, ws_clients):
    user = await call(make_user)
    events = [await call(notify, user, f"n{n}") for n in range(3)]
    _, (client, _other) = await connected_twice(relay, ws_clients, user)

    def marked_then_rolled_back():
        with transaction.atomic():
            mark_read(user, events[0])
            transaction.set_rollback(True)

    await call(marked_then_rolled_back)

    # An id that is not theirs is left alone; the rolled-back mark sent nothing (this frame is first).
    assert await call(mark_read, user, [events[0].pk, events[2], 10**9]) == [events[0].pk, events[2].pk]
    await expect_read(client, ids=[events[0].pk, events[2].pk], up_to=None, unread_count=1, latest=events[2].pk)

    up_to = await call(mark_all_read, user)
    assert up_to >= events[2].pk
    await expect_read(client, ids=None, up_to=up_to, unread_count=0, latest=up_to)
    with pytest.raises(TypeError, match="events or event ids"):
        await call(mark_read, user, [object()])


async def test_a_read_frame_is_not_replayed_on_resume(relay, ws_clients):
    user = await call(make_user)
    event = await call(notify, user, "before")
    session = await call(login, user)
    client, welcome = await ws_clients.with_cookie(relay, session)
    cursor = welcome["cursor"]
    await call(post, session, read_url(event))
    await client.expect("read")
    await call(notify, user, "after the read")
    await client.expect_event("after the read")

    again, _ = await ws_clients.with_cookie(relay, session)
    await again.send({"type": "resume", "cursor": cursor})
    assert (await again.expect_event())["event"]["title"] == "after the read"  # the read frame is not among them
    await again.send({"type": "ping", "ref": 1})
    await again.expect("pong")


# The badge stays right while notifications commit at the same moment -----------------------------


class Badge:
    """A client's badge, following the `read` frame's rule (docs/protocol.md)."""

    def __init__(self, count, latest):
        self.count, self.latest = count, latest

    def apply(self, frame):
        if frame["type"] == "read":
            self.count, self.latest = frame["unread_count"], frame["latest"]
        elif frame["type"] == "event" and (self.latest is None or frame["event"]["id"] > self.latest):
            self.count += 1


def in_thread(function):
    """Run ORM code in a thread of its own, closing its database connection after."""

    def run(*args):
        try:
            return function(*args)
        finally:
            connections.close_all()

    return lambda *args: asyncio.to_thread(run, *args)


@in_thread
def notify_with_late_publication(user, title, committed, delay):
    """notify() whose publication waits `delay` s after its commit (on_commit callbacks run in order)."""
    with transaction.atomic():
        transaction.on_commit(committed.set)
        transaction.on_commit(lambda: time.sleep(delay))
        notify(user, title)


@in_thread
def mark_read_when(user, event, ready, delay):
    ready.wait(5)
    time.sleep(delay)
    mark_read(user, event)


@in_thread
def unread_count(user):
    return feed.unread_count(user)


TRIALS = 32


async def test_the_count_is_right_when_a_notification_commits_concurrently(relay, ws_clients):
    """
    Each trial commits a new notification and marks an older one read, in four arrangements in
    turn: the event committed before the count but published after the frame (the window held
    open 0.3 s); the event first; the frame first; both at random moments. The badge, kept by
    the frame's rule, must equal the feed's count after each.
    """
    user = await call(make_user)
    olds = [await call(notify, user, f"old {n}") for n in range(TRIALS)]
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    badge = Badge(await unread_count(user), olds[-1].pk)
    orders = set()
    for trial in range(TRIALS):
        arrangement, title = trial % 4, f"new {trial}"
        committed, go = threading.Event(), threading.Event()
        go.set()
        if arrangement == 0:  # committed before the count, published after the frame
            await asyncio.gather(
                notify_with_late_publication(user, title, committed, 0.3), mark_read_when(user, olds[trial], committed, 0.0)
            )
        elif arrangement == 1:
            await notify_with_late_publication(user, title, committed, 0.0)
            await mark_read_when(user, olds[trial], go, 0.0)
        elif arrangement == 2:
            await mark_read_when(user, olds[trial], go, 0.0)
            await notify_with_late_publication(user, title, committed, 0.0)
        else:
            await asyncio.gather(
                notify_with_late_publication(user, title, committed, random.uniform(0, 0.02)),
                mark_read_when(user, olds[trial], go, random.uniform(0, 0.02)),
            )
        seen = []
        while len(seen) < 2:
            frame = await client.recv()
            badge.apply(frame)
            seen.append(frame["type"])
        orders.add(tuple(seen))
        assert badge.count == await unread_count(user), f"trial {trial} ({seen}): badge {badge.count}"
    assert orders == {("read", "event"), ("event", "read")}, f"both orders of arrival were to be run: {orders}"
