"""
permessage-deflate (WSSERVER_COMPRESSION), against real relays with real clients that offer it,
as browsers do. On: the relay accepts the offer within its bounded windows and sends compressed
events (RSV1 set on the wire), while a client that did not offer it gets the same event
uncompressed. Off (the default): the offer is declined and events arrive as plain text frames.
"""

import pytest

from notifications import notify
from wsserver import compression

from .aio import call, live_servers
from .factories import login, make_group, make_user

pytestmark = live_servers

RSV1 = 0x40  # the first byte's bit that marks a compressed message (RFC 7692)


def first_bytes_of_each_read(client):
    """Record the first byte of each chunk the client's socket reads from now on (a frame's first byte)."""
    seen = []
    connection = client.connection
    read = connection.data_received

    def data_received(data):
        seen.append(data[0])
        read(data)

    connection.data_received = data_received
    return seen


async def connected_user(ws_clients, relay, compression="deflate", user=None):
    user = user or await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user), compression=compression)
    return user, client


@pytest.fixture
async def compressing_relay(relay_factory):
    return await call(relay_factory, extra_env={"WSSERVER_COMPRESSION": "1"})


async def test_with_compression_on_an_offering_client_negotiates_it_and_gets_compressed_events(compressing_relay, ws_clients):
    user, client = await connected_user(ws_clients, compressing_relay)
    [extension] = client.connection.protocol.extensions
    assert extension.name == "permessage-deflate"
    assert extension.remote_max_window_bits == compression.WINDOW_BITS  # the relay's side is bounded
    assert extension.local_max_window_bits == compression.WINDOW_BITS  # and so is ours, as asked
    seen = first_bytes_of_each_read(client)
    await call(notify, user, "compressed")
    await client.expect_event("compressed")
    assert seen and seen[0] & RSV1, f"the event frame was not compressed (first byte {seen[:1]})"


async def test_with_compression_on_a_client_that_does_not_offer_it_gets_plain_frames(compressing_relay, ws_clients):
    user, plain = await connected_user(ws_clients, compressing_relay, compression=None)
    assert plain.connection.protocol.extensions == []
    seen = first_bytes_of_each_read(plain)
    await call(notify, user, "plain")
    await plain.expect_event("plain")
    assert seen and not seen[0] & RSV1


async def test_with_compression_on_one_event_reaches_compressing_and_plain_clients(compressing_relay, ws_clients):
    first, second = await call(make_user), await call(make_user)
    group = await call(make_group, members=[first, second])
    _, deflating = await connected_user(ws_clients, compressing_relay, user=first)
    _, plain = await connected_user(ws_clients, compressing_relay, compression=None, user=second)
    seen_deflating, seen_plain = first_bytes_of_each_read(deflating), first_bytes_of_each_read(plain)
    for title in ("one", "two", "three"):
        await call(notify, group, title)
    for title in ("one", "two", "three"):
        await deflating.expect_event(title)
        await plain.expect_event(title)
    assert seen_deflating[0] & RSV1 and not seen_plain[0] & RSV1


async def test_with_compression_off_the_offer_is_declined_and_events_arrive(relay, ws_clients):
    user, client = await connected_user(ws_clients, relay)
    assert client.connection.protocol.extensions == []
    seen = first_bytes_of_each_read(client)
    await call(notify, user, "uncompressed")
    await client.expect_event("uncompressed")
    assert seen and not seen[0] & RSV1
