"""
Presence on object topics, through real relays: who else has an object open, across relays, to
those who may view it and no one else; snapshots on subscribe, joins, state changes, leaves (an
explicit one, an unsubscribe, a closed socket, a revoked permission, a relay killed with
kill -9), present() from Python, the rate limit and the setting that turns it off.
"""

import asyncio
import random
import time

from notifications import notify, presence

from .aio import call, live_servers
from .factories import login, make_user, permissions

pytestmark = live_servers

KILLED_RELAY_LEAVES_WITHIN = 30  # seconds


def topic_of(user):
    return f"object:auth.user:{user.pk}"


async def viewer(ws_clients, relay, user, topic, state="viewing"):
    """
    A socket of `user` subscribed to `topic` and announced there: (client, the presence_state
    it got, without its own entry). Its own join is the next frame.
    """
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await client.send({"type": "resume", "cursor": "0-0"})
    await client.subscribe([topic])
    await announce(client, topic, state)
    frames = [await client.recv(), await client.recv()]  # its own join and the snapshot, in either order
    diff, snapshot = sorted(frames, key=lambda frame: frame["type"])
    assert (diff["type"], snapshot["type"]) == ("presence_diff", "presence_state") and snapshot["topic"] == topic
    assert users_in(diff["joins"]) == {(user.username, state)}
    return client, {key: each for key, each in snapshot["presences"].items() if each["user"]["id"] != user.pk}


async def announce(client, topic, state):
    await client.send({"type": "presence", "topic": topic, "state": state, "ref": 1})
    answer = await client.expect("announced")
    assert answer == {"type": "announced", "topic": topic, "state": state, "ref": 1}


async def next_diff(client, timeout=5.0):
    frame = await client.expect("presence_diff", timeout=timeout)
    return frame["joins"], frame["leaves"]


def users_in(entries):
    return {(entry["user"]["username"], entry["state"]) for entry in entries.values()}


async def test_viewers_see_each_other_across_relays_and_those_without_permission_see_nothing(relay, relay_factory, ws_clients):
    other_relay = relay_factory()
    carol = await call(make_user, "carol")
    alice, bob = [await call(make_user, name, perms=("auth.view_user",)) for name in ("alice", "bob")]
    mallory = await call(make_user, "mallory")
    topic = topic_of(carol)

    alices, snapshot = await viewer(ws_clients, relay, alice, topic)
    assert snapshot == {}
    bobs, snapshot = await viewer(ws_clients, other_relay, bob, topic)
    assert users_in(snapshot) == {(alice.username, "viewing")}
    joins, _ = await next_diff(alices)
    assert users_in(joins) == {(bob.username, "viewing")}

    await announce(bobs, topic, "editing")  # a change of state is a join under the same key
    for client in (alices, bobs):
        joins, leaves = await next_diff(client)
        assert users_in(joins) == {(bob.username, "editing")} and leaves == {}
    assert await call(presence.present, topic) == [
        presence.entry(bob.pk, bob.username, "editing"),
        presence.entry(alice.pk, alice.username, "viewing"),
    ]

    # Mallory may not view carol: her subscribe is refused, so she can neither see nor announce.
    mallorys, _ = await ws_clients.with_cookie(relay, await call(login, mallory))
    await mallorys.send({"type": "subscribe", "topics": [topic]})
    assert (await mallorys.expect("error"))["code"] == "forbidden"
    await mallorys.send({"type": "presence", "topic": topic, "state": "viewing"})
    assert (await mallorys.expect("error"))["code"] == "not_subscribed"
    await mallorys.send({"type": "ping"})
    await mallorys.expect("pong")  # nothing of alice's and bob's presence came before

    await announce(bobs, topic, None)  # bob leaves, explicitly
    _, leaves = await next_diff(alices)
    assert len(leaves) == 1 and await call(presence.present, topic) == [presence.entry(alice.pk, alice.username, "viewing")]


async def test_an_entry_leaves_with_its_socket_its_subscription_and_its_permission(relay, ws_clients):
    carol = await call(make_user, "carol")
    alice, bob = [await call(make_user, name, perms=("auth.view_user",)) for name in ("alice", "bob")]
    topic = topic_of(carol)
    alices, _ = await viewer(ws_clients, relay, alice, topic)

    async def bob_arrives():
        client, _ = await viewer(ws_clients, relay, bob, topic)
        joins, _ = await next_diff(alices)
        assert users_in(joins) == {(bob.username, "viewing")}
        return client

    for leaving in ("close", "unsubscribe", "revoke"):
        bobs = await bob_arrives()
        if leaving == "close":
            await bobs.close()
        elif leaving == "unsubscribe":
            await bobs.send({"type": "unsubscribe", "topics": [topic]})
        else:
            await call(lambda: bob.user_permissions.remove(*permissions("auth.view_user")))
        _, leaves = await next_diff(alices)
        assert len(leaves) == 1, leaving
        assert await call(presence.present, topic) == [presence.entry(alice.pk, alice.username, "viewing")], leaving
        if leaving == "revoke":
            assert (await bobs.expect("unsubscribed"))["reason"] == "permission_revoked"


async def test_the_users_of_a_killed_relay_leave_within_30_seconds(relay, relay_factory, ws_clients):
    doomed = relay_factory()
    carol = await call(make_user, "carol")
    alice, bob = [await call(make_user, name, perms=("auth.view_user",)) for name in ("alice", "bob")]
    topic = topic_of(carol)
    alices, _ = await viewer(ws_clients, relay, alice, topic)
    await viewer(ws_clients, doomed, bob, topic)
    await next_diff(alices)

    doomed.process.kill()
    started = time.monotonic()
    _, leaves = await next_diff(alices, timeout=KILLED_RELAY_LEAVES_WITHIN + 5)
    took = time.monotonic() - started
    assert len(leaves) == 1 and took < KILLED_RELAY_LEAVES_WITHIN, took
    assert await call(presence.present, topic) == [presence.entry(alice.pk, alice.username, "viewing")]
    # A socket arriving later does not see the dead either.
    _, snapshot = await viewer(ws_clients, relay, await call(make_user, "ann", perms=("auth.view_user",)), topic)
    assert users_in(snapshot) == {(alice.username, "viewing")}


async def test_announcements_are_rate_limited(relay, ws_clients):
    carol, alice = await call(make_user, "carol"), await call(make_user, "alice", perms=("auth.view_user",))
    topic = topic_of(carol)
    alices, _ = await viewer(ws_clients, relay, alice, topic)
    codes = []
    for n in range(1, 8):
        await alices.send({"type": "presence", "topic": topic, "state": ("viewing", "editing")[n % 2]})
        frame = await alices.recv()
        while frame["type"] == "presence_diff":
            frame = await alices.recv()
        codes.append(frame.get("code", frame["type"]))
    assert codes[:4] == ["announced"] * 4 and "rate_limited" in codes[4:], codes  # a burst of 5, the first was viewer()'s


async def test_presence_can_be_turned_off(relay_factory, ws_clients):
    quiet = relay_factory(settings_module="tests.settings_relay_knobs", extra_env={"NOTIFICATIONS_PRESENCE": "0"})
    carol, alice = await call(make_user, "carol"), await call(make_user, "alice", perms=("auth.view_user",))
    topic = topic_of(carol)
    alices, _ = await ws_clients.with_cookie(quiet, await call(login, alice))
    await alices.subscribe([topic])
    await alices.send({"type": "presence", "topic": topic, "state": "viewing"})
    assert (await alices.expect("error"))["code"] == "presence_disabled"
    await alices.send({"type": "ping"})
    await alices.expect("pong")  # and no presence frame came after it


async def test_a_socket_that_never_announces_itself_gets_no_presence_frames(relay, ws_clients):
    """Clients that know nothing of presence see the protocol they knew: events only."""
    carol = await call(make_user, "carol")
    alice, bob = [await call(make_user, name, perms=("auth.view_user",)) for name in ("alice", "bob")]
    topic = topic_of(carol)
    bobs, _ = await ws_clients.with_cookie(relay, await call(login, bob))
    await bobs.subscribe([topic])
    await viewer(ws_clients, relay, alice, topic)
    await call(notify, bob, "after alice arrived")
    await bobs.expect_event("after alice arrived")


async def test_an_announcement_racing_a_revocation_never_leaves_the_revoked_user_present(relay, ws_clients):
    """
    Bob announces himself while his permission is taken away at a random moment: whichever comes
    first, once both are over he is nowhere: not in Redis, not in what alice's socket was told.
    """
    carol = await call(make_user, "carol")
    alice = await call(make_user, "alice", perms=("auth.view_user",))
    topic = topic_of(carol)
    alices, _ = await viewer(ws_clients, relay, alice, topic)
    seen = {}
    for trial in range(10):
        bob = await call(make_user, f"bob{trial}", perms=("auth.view_user",))
        bobs, _ = await ws_clients.with_cookie(relay, await call(login, bob))
        await bobs.subscribe([topic])
        await bobs.send({"type": "presence", "topic": topic, "state": "editing"})
        await asyncio.sleep(random.uniform(0, 0.01))
        await call(lambda: bob.user_permissions.clear())  # noqa: B023
        while (frame := await bobs.recv())["type"] != "unsubscribed":
            assert frame["type"] in {"announced", "presence_diff", "presence_state", "error"}, frame
        await asyncio.sleep(0.5)  # what the relay does after the revocation is written by now
        assert bob.pk not in {each["user"]["id"] for each in await call(presence.present, topic)}, f"trial {trial}"
        while True:  # what alice was told, up to now
            try:
                frame = await alices.recv(timeout=0.2)
            except AssertionError:
                break
            seen.update(frame["joins"])
            for key in frame["leaves"]:
                seen.pop(key, None)
        assert bob.pk not in {each["user"]["id"] for each in seen.values()}, f"trial {trial}: alice still sees bob"
        await bobs.close()
