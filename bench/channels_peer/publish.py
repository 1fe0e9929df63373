"""
The Channels peer's publisher: group_send of benchmark payloads (bench/payload.py) to the group
every connection joined, as a Django application publishes through its channel layer.

It runs in the peer's virtualenv and takes JSON lines on stdin, answering one line each:
    {"cmd": "burst", "seq": 0, "count": 500}            as fast as group_send returns
    {"cmd": "paced", "seq": 0, "count": 200, "rate": 10} `rate` a second, on schedule
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_peer.settings")

import django  # noqa: E402

django.setup()

from channels.layers import get_channel_layer  # noqa: E402

from channels_peer.asgi import GROUP  # noqa: E402
from payload import payload  # noqa: E402


async def main():
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        seq, count = command["seq"], command["count"]
        started = time.monotonic()
        interval = 1 / command["rate"] if command["cmd"] == "paced" else 0
        for n in range(count):
            if interval:
                delay = started + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await layer.group_send(GROUP, {"type": "bench.event", "text": payload(seq + n, time.time_ns())})
        print(json.dumps({"published": count, "elapsed": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
