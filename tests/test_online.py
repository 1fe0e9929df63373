"""
Who is connected (notifications.online): real relays tell Redis which users have a live socket,
across relays, through sockets opening and closing, a relay killed without a word, a clean
stop, and Redis losing what it was told.
"""

import asyncio
import time

from django_redis import get_redis_connection

from notifications import online

from .aio import call, live_servers
from .factories import fetch_ticket, login, make_user

pytestmark = live_servers

FLUSHED_WITHIN = 2.0  # seconds: a relay tells Redis of a change within FLUSH_SECONDS, and a user asks


async def connected_now(*users):
    return await call(online.connected_users, [user.pk for user in users])


async def until_connected(users, expected, within):
    """Wait (bounded) until exactly `expected` of `users` are connected; how long that took."""
    started = time.monotonic()
    wanted = {user.pk for user in expected}
    while (found := await connected_now(*users)) != wanted:
        assert time.monotonic() - started < within, f"connected: {found}, not {wanted}, after {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_users_are_connected_while_a_socket_of_theirs_is_open_on_any_relay(relay_factory, ws_clients):
    first, second = relay_factory(), relay_factory()
    alice, bob, carol = [await call(make_user, name) for name in ("alice", "bob", "carol")]
    everyone = (alice, bob, carol)
    alice_here, _ = await ws_clients.with_cookie(first, await call(login, alice))
    await ws_clients.with_ticket(second, await call(fetch_ticket, await call(login, bob)))
    await until_connected(everyone, {alice, bob}, FLUSHED_WITHIN)

    alice_there, _ = await ws_clients.with_cookie(second, await call(login, alice))
    await alice_here.close()
    await asyncio.sleep(online.REFRESH_SECONDS / 5)
    assert await connected_now(*everyone) == {alice.pk, bob.pk}, "a socket of alice is still open"
    await alice_there.close()
    await until_connected(everyone, {bob}, FLUSHED_WITHIN)


async def test_the_users_of_a_killed_relay_time_out_and_a_stopped_relay_s_leave_at_once(relay_factory, ws_clients):
    doomed, survivor, stopping = relay_factory(), relay_factory(), relay_factory()
    alice, bob, carol = [await call(make_user, name) for name in ("alice", "bob", "carol")]
    everyone = (alice, bob, carol)
    await ws_clients.with_cookie(doomed, await call(login, alice))
    await ws_clients.with_cookie(survivor, await call(login, bob))
    await ws_clients.with_cookie(stopping, await call(login, carol))
    await until_connected(everyone, everyone, FLUSHED_WITHIN)

    doomed.process.kill()  # SIGKILL: no goodbye to Redis
    stopping.stop()  # SIGTERM: its users leave before it exits
    assert await until_connected(everyone, {alice, bob}, FLUSHED_WITHIN) < FLUSHED_WITHIN
    took = await until_connected(everyone, {bob}, online.ONLINE_TTL + FLUSHED_WITHIN)
    assert took > online.ONLINE_TTL - online.REFRESH_SECONDS - FLUSHED_WITHIN, "gone before its set could expire?"

    redis = get_redis_connection()
    relays = {relay.decode() for relay in redis.smembers(online.registry_key())}
    assert len(relays) >= 1 and all(redis.exists(online.alive_key(relay)) for relay in relays), "the dead are pruned"


async def test_a_relay_writes_its_users_again_when_redis_lost_them(relay_factory, ws_clients):
    relay = relay_factory()
    alice, bob = await call(make_user, "alice"), await call(make_user, "bob")
    await ws_clients.with_cookie(relay, await call(login, alice))
    await until_connected((alice, bob), {alice}, FLUSHED_WITHIN)

    redis = get_redis_connection()
    for key in redis.scan_iter(f"{online.registry_key()}*"):
        redis.delete(key)
    assert await connected_now(alice, bob) == set()
    await until_connected((alice, bob), {alice}, online.REFRESH_SECONDS + FLUSHED_WITHIN)
