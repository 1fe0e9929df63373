"""
`runwsserver --workers N` (SO_REUSEPORT) and the relay's /metrics: every worker delivers every
event to its own clients once, the metrics add up over workers, SIGTERM stops them all.
"""

import asyncio
import signal
import time
import urllib.request

from notifications import notify

from .aio import call, live_servers
from .factories import login, make_user
from .test_delivery import wait_closed

pytestmark = live_servers




def metrics(relay):
    with urllib.request.urlopen(relay.ops_url("/metrics"), timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#") and " " in line
    }


async def test_two_workers_share_the_port_and_each_event_reaches_each_client_once(relay_factory, ws_clients):
    relay = await call(relay_factory, args=["--workers", "2"])
    deadline = time.monotonic() + 30
    while "(2 workers)" not in relay.output() and time.monotonic() < deadline:  # all listening
        await asyncio.sleep(0.1)
    assert "(2 workers)" in relay.output()
    users = [await call(make_user) for _ in range(8)]
    clients = [(await ws_clients.with_cookie(relay, await call(login, user)))[0] for user in users]
    for user in users:
        await call(notify, user, "for you")
    await call(notify, users, "for everyone")
    for client in clients:
        await client.expect_event("for you")
        await client.expect_event("for everyone")
    await call(notify, users, "control")
    for client in clients:
        await client.expect_event("control")  # nothing twice before it

    counts = await asyncio.to_thread(metrics, relay)
    assert counts["wsserver_connections"] == 8  # summed over both workers
    assert counts["wsserver_deliveries_total"] >= 8 * 3
    # Both workers read every event: each counted the 10 events once.
    assert counts["wsserver_events_received_total"] >= 2 * 10

    started = time.monotonic()
    relay.process.send_signal(signal.SIGTERM)
    assert {await wait_closed(client) for client in clients} == {1001}
    await asyncio.to_thread(relay.process.wait, 6)
    assert time.monotonic() - started < 6.0


async def test_metrics_of_one_relay(relay, ws_clients):
    before = await asyncio.to_thread(metrics, relay)
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await client.subscribe(["model:*"])
    await call(notify, user, "counted")
    await client.expect_event("counted")
    after = await asyncio.to_thread(metrics, relay)
    assert after["wsserver_connections"] == before["wsserver_connections"] + 1
    assert after["wsserver_subscriptions"] == before["wsserver_subscriptions"] + 2  # inbox and model:*
    assert after["wsserver_events_received_total"] > before["wsserver_events_received_total"]
    assert after["wsserver_deliveries_total"] > before["wsserver_deliveries_total"]
    assert after["wsserver_redis_up"] == 1
    assert "wsserver_event_lag_seconds_count" in after
