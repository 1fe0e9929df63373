"""
permessage-deflate off and on (WSSERVER_COMPRESSION), side by side: bytes on the wire,
deliveries per second and memory per socket.

    .venv/bin/python bench/compression.py [--clients 1000] [--keep]

One relay process (one worker) for each setting, the same number of connections that offer
permessage-deflate as browsers do (the relay with it off declines), and the same kind of events:
≈400 bytes whose title and body are words and numbers drawn afresh for each event (payload.py's
prose: the side-by-side rows' filler of one repeated letter would compress to nothing). It measures:

- bytes on the wire per delivery: what the load client's sockets received during the bursts
  (WebSocket frames, headers included, compressed as they were sent), divided by the deliveries;
- deliveries/s: bursts of EVENTS events to every client, the median of REPEATS, and the relay's
  CPU time per delivery;
- memory per socket: the relay's RSS with the clients connected, less its RSS before they
  connected, divided by their number; once they are idle after `welcome`, and once more after the
  bursts (a compressor's buffers are touched as it works).

run.py runs this as part of the full benchmark, on its world; alone, it builds its own.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import log  # noqa: E402
from loadclient import LoadClients  # noqa: E402

CLIENTS = 1000
CLIENT_WORKERS = 2
EVENTS = 100
REPEATS = 5


def measure(world, python, seqs, compression, clients=CLIENTS, events=EVENTS, repeats=REPEATS):
    """One relay with WSSERVER_COMPRESSION = `compression`: the figures above."""
    import systems
    from run import burst

    relay = systems.Ours(world, compression=compression, prose=True)
    server = relay.start()
    name = "on" if compression else "off"
    load = LoadClients(python, workers=CLIENT_WORKERS, log=open(world.logs / f"loadclient-compression-{name}.log", "ab"))
    try:
        time.sleep(1)
        rss_before = server.rss_mib()
        connected = load.connect(
            relay.url, clients, cookies=world.cookies[:clients], origin=relay.origin, ready="welcome", compression=True
        )
        if connected["connected"] != clients:
            raise RuntimeError(f"compression {name}: {connected['connected']}/{clients} connected: {connected['errors']}")
        time.sleep(1.5)  # past the relay's hold after `welcome`
        rss_idle = server.rss_mib()
        burst(relay, load, server, seqs, max(5, events // 10), timeout=60)  # warm-up, not reported
        runs = [burst(relay, load, server, seqs, events, timeout=120) for _ in range(repeats)]
        rss_after = server.rss_mib()
    finally:
        load.close()
        relay.stop()
    median = sorted(runs, key=lambda run: run["rate"])[len(runs) // 2]
    deliveries = sum(run["deliveries"] for run in runs)
    result = {
        "setting": name,
        "compressed": median["compressed"],
        "clients": clients,
        "rate": median["rate"],
        "runs": [run["rate"] for run in runs],
        "bytes_per_delivery": sum(run["bytes"] for run in runs) / max(deliveries, 1),
        "relay_us_per_delivery": median["relay_cpu"] * median["elapsed"] / max(median["deliveries"], 1) * 1e6,
        "lost": sum(run["expected"] - run["deliveries"] for run in runs),
        "kib_per_socket_idle": (rss_idle - rss_before) * 1024 / clients,
        "kib_per_socket_after": (rss_after - rss_before) * 1024 / clients,
        "foreign_cpu": median["foreign_cpu"],
    }
    log(
        f"  compression {name}: {result['compressed']}/{clients} negotiated it; {result['rate']:,.0f} deliveries/s "
        f"(runs {', '.join(f'{r:,.0f}' for r in result['runs'])}), {result['relay_us_per_delivery']:.2f} µs of relay CPU "
        f"a delivery, {result['bytes_per_delivery']:.0f} bytes on the wire a delivery; RSS {rss_before:.0f} MiB before, "
        f"{rss_idle:.0f} MiB connected, {rss_after:.0f} MiB after the bursts"
    )
    return result


def run(world, python, seqs, clients=CLIENTS):
    """Off, then on; each alone on the machine."""
    log(f"== permessage-deflate off and on, {clients:,} clients")
    return [measure(world, python, seqs, compression, clients) for compression in (False, True)]


def main():
    from run import Sequence

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    results = harness.run_alone(args.clients, lambda world, python: run(world, python, Sequence(), args.clients), keep=args.keep)
    for result in results:
        print(result)


if __name__ == "__main__":
    main()
