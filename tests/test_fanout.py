"""
fanout.Writes against real websockets connections (a websockets server in this process, real
clients): frames queued for several connections arrive whole and in order on each, compressed on
the connection that negotiated permessage-deflate and as the shared bytes on the others; a
connection whose closing handshake began gets nothing more and does not stop the others.
"""

import asyncio
import json

import pytest

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.protocol import State

from wsserver import fanout

from .wsclient import RECV_TIMEOUT

# Long and repetitive, as event frames are: compressed, each is a fraction of its size.
FRAMES = [json.dumps({"type": "event", "n": n, "text": "event " * 50}) for n in range(3)]


def bytes_read(client):
    """A list that grows with the size of each chunk the client's socket reads from now on."""
    sizes = []
    read = client.data_received

    def data_received(data):
        sizes.append(len(data))
        read(data)

    client.data_received = data_received
    return sizes


@pytest.mark.parametrize("count", [1, 3])  # one frame is written straight; more are gathered per connection
async def test_queued_frames_reach_each_open_connection_in_order_framed_for_it(count):
    accepted = asyncio.Queue()

    async def handler(connection):
        await accepted.put(connection)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression="deflate") as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        clients = {}
        for name, compression in (("plain", None), ("deflating", "deflate"), ("leaving", None)):
            clients[name] = await connect(url, compression=compression)
            clients[name].server_side = await asyncio.wait_for(accepted.get(), RECV_TIMEOUT)
        leaving = clients.pop("leaving")
        leaving.transport.pause_reading()  # so that the relay's side stays CLOSING, its socket open
        sizes = {name: bytes_read(client) for name, client in (*clients.items(), ("leaving", leaving))}
        closing = asyncio.create_task(leaving.server_side.close())
        await asyncio.sleep(0.1)
        assert leaving.server_side.protocol.state is State.CLOSING

        writes = fanout.Writes()
        everyone = [client.server_side for client in (*clients.values(), leaving)]
        for frame in FRAMES[:count]:
            writes.send(everyone, frame)
        writes.flush()

        for client in clients.values():
            assert [await asyncio.wait_for(client.recv(), RECV_TIMEOUT) for _ in range(count)] == FRAMES[:count]
        leaving.transport.resume_reading()
        await asyncio.wait_for(closing, RECV_TIMEOUT)
        assert sum(sizes["leaving"]) == 4  # its close frame (code 1000, no reason), then nothing
        assert clients["deflating"].protocol.extensions and not clients["plain"].protocol.extensions
        assert sum(sizes["deflating"]) < sum(sizes["plain"]) / 4  # compressed on the wire
        for client in clients.values():
            await client.close()
