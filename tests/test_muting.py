"""
Preferences on the relay: an event a user muted reaches their sockets marked `"muted": true`
(listed, never toasted), and no one else's; a change reaches open sockets at once as a
`preferences` frame and applies from the next event, with no query per delivery; replays mark
muted events too; and a change committed while a socket's handshake is under way still wins.
"""

import asyncio
import json
import random
import time

from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications import notify, preferences
from notifications.models import Preferences
from notifications.preferences import Mutes, Reader
from wsserver.hub import Hub

from .aio import call, live_servers
from .factories import login, make_user
from .test_hub import Written

pytestmark = live_servers

SHIPPED = "order.shipped"
TRIALS = 8
SOCKETS = 9  # per relay and trial, two relays: under WSSERVER_MAX_CONNECTIONS_PER_USER


async def muting(user, **choices):
    return await call(preferences.update, user, choices, partial=True)


async def next_event(client, title):
    """The event frame titled `title`, skipping `preferences` frames (only those) before it."""
    while True:
        frame = await client.recv()
        if frame["type"] == "event":
            assert frame["event"]["title"] == title, frame
            return frame
        assert frame["type"] == "preferences", frame


async def test_an_event_is_marked_muted_for_the_users_who_muted_it_only(relay, ws_clients):
    alice, bob, carol = [await call(make_user, name) for name in ("alice", "bob", "carol")]
    await muting(alice, muted_kinds=[SHIPPED], muted_topics=[f"object:auth.user:{carol.pk}"])
    mine, _ = await ws_clients.with_cookie(relay, await call(login, alice))
    theirs, _ = await ws_clients.with_cookie(relay, await call(login, bob))
    both = await call(lambda: type(alice).objects.filter(pk__in=[alice.pk, bob.pk]))

    await call(notify, both, "shipped", kind=SHIPPED)
    await call(notify, both, "about carol", target=carol)
    await call(notify, both, "about bob", target=bob)
    for title, muted in (("shipped", True), ("about carol", True), ("about bob", False)):
        frame = await mine.expect_event(title)
        assert frame.get("muted", False) is muted, frame
        assert "muted" not in await theirs.expect_event(title)


async def test_a_change_reaches_open_sockets_at_once_and_applies_from_the_next_event(relay, ws_clients):
    alice, bob = await call(make_user, "alice"), await call(make_user, "bob")
    mine, _ = await ws_clients.with_cookie(relay, await call(login, alice))
    theirs, _ = await ws_clients.with_cookie(relay, await call(login, bob))

    started = time.monotonic()
    choices = await muting(alice, muted_kinds=[SHIPPED], toasts=False)
    frame = await mine.expect("preferences")
    assert time.monotonic() - started < 1.0
    assert frame == {"type": "preferences", "preferences": choices.as_json()}
    assert frame["preferences"]["toasts"] is False and frame["preferences"]["muted_kinds"] == [SHIPPED]
    await call(notify, alice, "muted now", kind=SHIPPED)
    assert (await mine.expect_event("muted now"))["muted"] is True

    await muting(alice, muted_kinds=None)  # back to the site's default: nothing muted
    assert (await mine.expect("preferences"))["preferences"]["muted_kinds"] == []
    await call(notify, alice, "heard again", kind=SHIPPED)
    assert "muted" not in await mine.expect_event("heard again")

    await call(notify, bob, "for bob")
    await theirs.expect_event("for bob")  # bob was told nothing of alice's preferences before it


async def test_a_replay_marks_the_events_the_user_muted(relay, ws_clients):
    alice = await call(make_user, "alice")
    await muting(alice, muted_kinds=[SHIPPED])
    session = await call(login, alice)
    first, welcome = await ws_clients.with_cookie(relay, session)
    await first.close()
    await call(notify, alice, "missed, muted", kind=SHIPPED)
    await call(notify, alice, "missed, heard")

    again, _ = await ws_clients.with_cookie(relay, session)
    await again.send({"type": "resume", "cursor": welcome["cursor"]})
    assert (await again.expect_event("missed, muted"))["muted"] is True
    assert "muted" not in await again.expect_event("missed, heard")


async def test_a_change_committed_during_handshakes_wins_on_every_socket(relay, relay_factory, ws_clients):
    """
    Sockets open in bursts on two relays while alice's preferences flip at a random moment: those
    whose mutes were loaded before the change and registered after must apply it all the same.
    """
    relays = [relay, relay_factory()]
    alice = await call(make_user, "alice")
    session = await call(login, alice)
    muted, straddled = False, 0
    for trial in range(TRIALS):
        opening = [
            asyncio.ensure_future(ws_clients.with_cookie(relays[n % 2], session)) for n in range(2 * SOCKETS)
        ]
        await asyncio.sleep(random.uniform(0, 0.03))
        muted = not muted
        await muting(alice, muted_kinds=[SHIPPED] if muted else [])
        changed_by = time.monotonic()
        sockets = [client for client, _ in await asyncio.gather(*opening)]
        welcomed_at = time.monotonic()
        straddled += changed_by < welcomed_at
        title = f"trial {trial}"
        await call(notify, alice, title, kind=SHIPPED)
        for client in sockets:
            frame = await next_event(client, title)
            assert frame.get("muted", False) is muted, f"trial {trial}: a socket missed the change ({frame})"
        for client in sockets:
            await client.close()
    assert straddled, "no change committed while handshakes were under way"


async def test_mutes_changed_without_a_message_apply_after_the_periodic_re_check(relay_factory, ws_clients):
    relay = relay_factory(settings_module="tests.settings_relay_knobs", extra_env={"WSSERVER_RECHECK_INTERVAL": "1"})
    alice = await call(make_user, "alice")
    mine, _ = await ws_clients.with_cookie(relay, await call(login, alice))
    # A row written behind the app's back (a data migration, raw SQL): no control message.
    await call(lambda: Preferences.objects.create(user=alice, muted_kinds=[SHIPPED]))
    await asyncio.sleep(2.5)  # two re-check intervals
    await call(notify, alice, "muted by the re-check", kind=SHIPPED)
    assert (await mine.expect_event("muted by the re-check"))["muted"] is True


def test_a_delivery_costs_no_query_and_only_the_muting_connections_are_looked_at(django_db_blocker):
    hub, reader = Hub(), Reader(Mutes(frozenset([SHIPPED]), frozenset()))
    quiet, heard = Written(), Written()
    for each in (quiet, heard):
        hub.follow(each, ["inbox:all"])
    hub.set_reader(quiet, reader)
    shipped = json.dumps({"id": 1, "kind": SHIPPED, "title": "shipped", "target": None})
    with django_db_blocker.unblock(), CaptureQueriesContext(connection) as queries:
        hub.deliver([("1-0", 1, ["inbox:all"], shipped, None)])
    assert len(queries) == 0
    assert quiet.frames()[0]["muted"] is True and "muted" not in heard.frames()[0]

    hub.set_reader(quiet, preferences.EVERYONE)  # unmuted: back among those nobody looks at
    assert hub._readers == {}
    hub.deliver([("2-0", 2, ["inbox:all"], shipped.replace('"id": 1', '"id": 2'), None)])
    assert "muted" not in quiet.frames()[1]
