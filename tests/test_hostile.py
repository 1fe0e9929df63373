"""
Hostile input and abuse: each gets its documented answer (docs/security.md), the relay stays up,
and other clients are not affected.
"""

import asyncio
import socket

import pytest
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidStatus

from notifications import notify
from wsserver.limits import FloodGuard, TokenBucket

from .aio import call, live_servers
from .factories import fetch_ticket, login, make_user

pytestmark = live_servers




@pytest.fixture
async def strict_relay(relay_factory):
    return await call(relay_factory, settings_module="tests.settings_strict")


async def bystander(ws_clients, relay):
    """A well-behaved client, to show abuse elsewhere does not affect it."""
    user = await call(make_user, "bystander")
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    return user, client


async def still_served(client, user):
    await call(notify, user, "still served")
    await client.expect_event("still served")


# The limits as plain objects -------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_bucket_refills_at_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.1  # one token's worth
    assert [bucket.take(), bucket.take()] == [True, False]


def test_a_flood_is_answered_once_a_second_then_closed():
    clock = FakeClock()
    guard = FloodGuard(TokenBucket(rate=1, burst=3, clock=clock), clock=clock)
    assert [guard.admit() for _ in range(3)] == ["accept"] * 3
    assert [guard.admit() for _ in range(3)] == ["refuse", "drop", "drop"]
    assert guard.admit() == "close"  # past another burst of refusals


def test_a_calm_client_is_forgiven():
    clock = FakeClock()
    guard = FloodGuard(TokenBucket(rate=1, burst=2, clock=clock), clock=clock)
    assert [guard.admit() for _ in range(3)] == ["accept", "accept", "refuse"]
    clock.now += 5
    assert guard.admit() == "accept" and guard.refused == 0


def test_malformed_frames_are_tolerated_up_to_ten_in_a_row():
    guard = FloodGuard()
    assert not any(guard.malformed(True) for _ in range(10))
    assert not guard.malformed(False)  # a good frame resets the count
    assert [guard.malformed(True) for _ in range(11)][-1]


# Against a real relay ----------------------------------------------------------------------------


async def test_a_message_flood_gets_rate_limited_then_1008(relay, ws_clients):
    user, calm = await bystander(ws_clients, relay)
    flooder, _ = await ws_clients.with_cookie(relay, await call(login, await call(make_user)))
    for n in range(200):
        await flooder.send({"type": "ping", "ref": n})
    answers = []
    with pytest.raises(ConnectionClosed):
        while True:
            answers.append(await flooder.recv(timeout=5))
    assert flooder.connection.close_code == 1008
    assert sum(a["type"] == "pong" for a in answers) >= 30  # the burst was served
    assert [a["code"] for a in answers if a["type"] == "error"] == ["rate_limited"]  # answered once
    await still_served(calm, user)


async def test_a_frame_over_64_kib_closes_with_1009(relay, ws_clients):
    user, calm = await bystander(ws_clients, relay)
    big, _ = await ws_clients.with_cookie(relay, await call(login, await call(make_user)))
    await big.send('{"type": "ping", "ref": "' + "x" * (64 * 1024) + '"}')
    await big.expect_close(1009)
    await still_served(calm, user)


async def test_malformed_frames_beyond_tolerance_close_with_1008(relay, ws_clients):
    client, _ = await ws_clients.with_cookie(relay, await call(login, await call(make_user)))
    for frame in ["not json", b"\x00binary", "[1]", '{"type": 5}'] * 3:
        await client.send(frame)
    for _ in range(11):  # the eleventh is answered too, then the relay has had enough
        assert (await client.expect("error"))["code"] == "bad_request"
    await client.expect_close(1008)


async def test_a_ticket_in_the_query_string_is_refused(relay, ws_clients):
    ticket = await call(fetch_ticket, await call(login, await call(make_user)))
    with pytest.raises(InvalidStatus) as refused:
        await ws_clients.open(relay, origin=None, path=f"/ws/?ticket={ticket}")
    assert refused.value.response.status_code == 400
    assert ticket not in refused.value.response.body.decode()
    assert ticket not in relay.output()


async def test_per_user_connection_cap_answers_1013(strict_relay, ws_clients):
    session = await call(login, await call(make_user))
    first, second = [(await ws_clients.with_cookie(strict_relay, session))[0] for _ in range(2)]
    third = await ws_clients.open(strict_relay, cookie=session.cookie)
    await third.expect_close(1013)
    await first.close()
    await asyncio.sleep(0.2)
    fourth, _ = await ws_clients.with_cookie(strict_relay, session)  # a place freed up
    await second.send({"type": "ping", "ref": 1})
    await second.expect("pong")


async def test_per_ip_connection_cap_answers_1013(strict_relay, ws_clients):
    sessions = [await call(login, await call(make_user)) for _ in range(4)]
    for session in sessions:
        await ws_clients.with_cookie(strict_relay, session)
    extra = await ws_clients.open(strict_relay, cookie=(await call(login, await call(make_user))).cookie)
    await extra.expect_close(1013)


async def test_a_stalled_handshake_is_cut_off(strict_relay):
    """Half an HTTP request, then silence: the relay hangs up after its 1 s handshake timeout."""

    def stall():
        with socket.create_connection(("127.0.0.1", strict_relay.port), timeout=5) as sock:
            sock.sendall(b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            return sock.recv(1024)  # b"" once the relay closes; a timeout fails the test

    assert await asyncio.to_thread(stall) == b""


async def test_a_peer_that_stops_answering_pings_is_closed_and_others_are_not(relay_factory, ws_clients):
    """One task pings every socket (wsserver.keepalive); a peer silent for an interval is closed with 1011."""
    pinging = await call(relay_factory, settings_module="tests.settings_relay_knobs", extra_env={"WSSERVER_PING_INTERVAL": "0.5"})
    user, answering = await bystander(ws_clients, pinging)  # websockets' client answers pings
    session = await call(login, await call(make_user))

    def silent_peer():
        """A cookie handshake, then frames read and never answered: (opcodes received, close code)."""
        with socket.create_connection(("127.0.0.1", pinging.port), timeout=10) as sock:
            sock.sendall(
                f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: http://localhost\r\nCookie: {settings.SESSION_COOKIE_NAME}={session.cookie}\r\n\r\n".encode()
            )
            data, opcodes = b"", []
            while chunk := sock.recv(65536):
                data += chunk
                if not opcodes:  # the handshake's response first
                    if b"\r\n\r\n" not in data:
                        continue
                    head, data = data.split(b"\r\n\r\n", 1)
                    assert head.startswith(b"HTTP/1.1 101"), head
                    opcodes.append("open")
                while len(data) >= 4:  # the server's frames: unmasked, shorter than 64 KiB
                    length, start = data[1] & 0x7F, 2
                    if length == 126:
                        length, start = int.from_bytes(data[2:4], "big"), 4
                    if len(data) < start + length:
                        break
                    opcode, payload, data = data[0] & 0x0F, data[start : start + length], data[start + length :]
                    opcodes.append(opcode)
                    if opcode == 0x8:
                        return opcodes, int.from_bytes(payload[:2], "big")
            return opcodes, None

    opcodes, code = await asyncio.to_thread(silent_peer)
    assert 0x9 in opcodes, opcodes  # pinged
    assert code == 1011
    await asyncio.sleep(1.0)  # two more intervals for the answering client
    await still_served(answering, user)


async def test_the_relay_is_still_up_after_all_this(relay, ws_clients):
    user, client = await bystander(ws_clients, relay)
    await still_served(client, user)
