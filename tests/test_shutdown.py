"""
Stopping a relay under load: SIGINT (Ctrl-C) and SIGTERM close every socket with 1001 and the
process exits cleanly, its output free of tracebacks and of asyncio's "never retrieved"
complaints, with one worker and with several.
"""

import asyncio
import signal
import subprocess

import pytest

from notifications import notify

from .aio import call, live_servers
from .factories import login, make_group, make_user

pytestmark = live_servers

CLIENTS = 12
NOISE = ("Traceback", "never retrieved", "Task was destroyed", "Exception ignored")


async def publish_until(stop, group):
    n = 0
    while not stop.is_set():
        n += 1
        await call(notify, group, f"under load {n}")
        await asyncio.sleep(0.01)


async def read_until_closed(client):
    try:
        while True:
            await client.connection.recv()
    except Exception:
        return client.connection.close_code


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("workers", [1, 2], ids=["one worker", "two workers"])
async def test_a_relay_stopped_under_load_exits_without_a_traceback(relay_factory, ws_clients, signum, workers):
    relay = await call(relay_factory, args=["--workers", str(workers)] if workers > 1 else [])
    users = [await call(make_user) for _ in range(CLIENTS)]
    group = await call(make_group, members=users)
    clients = [(await ws_clients.with_cookie(relay, await call(login, user)))[0] for user in users]
    for client in clients:
        await client.subscribe(["model:*"])
    stop = asyncio.Event()
    publishing = asyncio.create_task(publish_until(stop, group))
    readers = [asyncio.create_task(read_until_closed(client)) for client in clients]
    await asyncio.sleep(1.0)  # events flowing, handshakes and subscriptions answered

    relay.process.send_signal(signum)
    try:
        returncode = await asyncio.to_thread(relay.process.wait, 15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"The relay did not exit within 15 s of {signum!r}:\n{relay.output()}")
    stop.set()
    await publishing
    codes = await asyncio.gather(*readers)

    assert codes == [1001] * CLIENTS
    assert returncode == 0, relay.output()
    output = relay.output()
    assert not [word for word in NOISE if word in output], output
