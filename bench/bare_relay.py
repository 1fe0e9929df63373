"""
The bare relay: the ceiling of this project's stack.

What this project's relay does with nothing else: a websockets asyncio server (compression off,
as the relay runs it) and one redis.asyncio reader following a Redis stream with XREAD BLOCK,
sending each entry's payload to every open connection with `websockets.broadcast`. No
authentication, no topics or routes, no cursors, no resume, no limits, no logging.

    .venv/bin/python bench/bare_relay.py --port 8766 --redis unix:///path/redis.sock?db=0 [--stream bare:events]

Entries carry one field, `data`: the frame, sent as it is (text).
"""

import argparse
import asyncio
import signal

import redis.asyncio as aioredis
from websockets.asyncio.server import broadcast, serve


async def main(port, url, stream):
    connections = set()

    async def handler(websocket):
        connections.add(websocket)
        try:
            await websocket.wait_closed()
        finally:
            connections.discard(websocket)

    async def follow():
        redis = aioredis.Redis.from_url(url)
        newest = await redis.xrevrange(stream, count=1)
        after = newest[0][0] if newest else b"0-0"
        while True:
            response = await redis.xread({stream: after}, count=500, block=5000)
            for _, entries in response:
                for entry_id, fields in entries:
                    broadcast(connections, fields[b"data"], text=True)
                    after = entry_id

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reader = asyncio.create_task(follow())
    async with serve(handler, "127.0.0.1", port, compression=None, server_header=None):
        print(f"bare relay listening on ws://127.0.0.1:{port}/", flush=True)
        await asyncio.wait([asyncio.create_task(stop.wait()), reader], return_when=asyncio.FIRST_COMPLETED)
    if reader.done():
        reader.result()  # raise what stopped it


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--stream", default="bare:events")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.redis, args.stream))
