"""
10,000 idle authenticated connections on one relay process (issue point 3).

    .venv/bin/python bench/connections.py [--connections 10000] [--client-workers 4] [--keep]

One `runwsserver` process (one worker). Each connection is a different user's session cookie,
so every handshake costs the relay a session lookup (and the user, and their groups for the
inbox routes), as a browser's would. It measures:

- the accept rate: connections per second, from the first handshake to the last `welcome`
  (authenticated, following the inbox), `--concurrency` handshakes in flight at a time;
- the relay's RSS once all are connected and idle;
- delivery to all of them: notify() of a group with every user in it, from the call in Django to
  the last of the connections receiving the event (several times; the slowest counts).

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

CLIENT_WORKERS = 4
CONCURRENCY = 200
EVENTS = 3


def run(world, python, count=10_000, client_workers=CLIENT_WORKERS, concurrency=CONCURRENCY, events=EVENTS):
    from notifications import notify

    import systems

    if len(world.cookies) < count:
        raise ValueError(f"{count} connections need {count} users; the world has {len(world.cookies)}.")
    log(f"== {count:,} connections on one relay process")
    relay = systems.Ours(world)
    server = relay.start()
    clients = LoadClients(python, workers=client_workers, log=open(world.logs / "loadclient-connections.log", "ab"))
    result = {"connections": count, "client_workers": client_workers, "concurrency": concurrency}
    try:
        rss_idle = server.rss_mib()
        cpu = server.cpu()
        watch = harness.CpuWatch()
        connected = clients.connect(
            relay.url, count, cookies=world.cookies[:count], origin=relay.origin, ready="welcome",
            concurrency=concurrency, timeout=120,
        )
        machine = watch.stop()
        result.update(
            connected=connected["connected"],
            errors=connected["errors"],
            connect_seconds=connected["elapsed"],
            accept_rate=connected["connected"] / connected["elapsed"],
            handshake_p50=harness_percentile(connected["durations"], 0.5) * 1000,
            handshake_p99=harness_percentile(connected["durations"], 0.99) * 1000,
            relay_cpu_connect=(server.cpu() - cpu) / connected["elapsed"],
            client_cpu_connect=connected["cpu"] / connected["elapsed"],
            foreign_cpu_connect=machine["foreign"],
            rss_start=rss_idle,
        )
        log(
            f"  connected {connected['connected']:,}/{count:,} in {connected['elapsed']:.1f} s: {result['accept_rate']:,.0f}/s "
            f"(handshake to welcome p50 {result['handshake_p50']:.0f} ms, p99 {result['handshake_p99']:.0f} ms; "
            f"relay CPU {result['relay_cpu_connect']:.0%}, load clients {result['client_cpu_connect']:.0%} in all, "
            f"other processes {machine['foreign']:.0%}); errors: {connected['errors'] or 'none'}"
        )
        time.sleep(2)  # idle: past the welcome holds, the log lines written
        result["rss"] = server.rss_mib()
        log(f"  relay RSS: {result['rss_start']:.0f} MiB before, {result['rss']:.0f} MiB with {connected['connected']:,} connections")
        group = world.groups[len(world.users)]
        seconds = []
        for n in range(events):
            seq = 2_000_000_000 + n  # apart from run.py's sequence numbers
            clients.window(seq, seq + 1)
            started = time.time_ns()
            notify(group, f"Benchmark event {seq}", data={"seq": seq, "ts": started})
            waited = clients.wait(timeout=30)
            took = (waited["last_ns"] - started) / 1e9 if waited["deliveries"] == waited["expected"] else float("inf")
            seconds.append(took)
            log(f"  event {n + 1}: {waited['deliveries']:,}/{waited['expected']:,} connections had it after {took:.2f} s; "
                f"closed: {waited['closed'] or 'none'}")
            time.sleep(1)
        result["all_received_seconds"] = seconds
        result["rss_after"] = server.rss_mib()
    finally:
        clients.close()
        relay.stop()
    return result


def harness_percentile(values, fraction):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--client-workers", type=int, default=CLIENT_WORKERS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    result = harness.run_alone(
        args.connections,
        lambda world, python: run(world, python, args.connections, args.client_workers, args.concurrency),
        keep=args.keep,
    )
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
