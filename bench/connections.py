"""
Idle authenticated connections: how fast the relay accepts them, what each one costs it in
memory, and how fast one event reaches all of them.

    .venv/bin/python bench/connections.py [--connections 10000] [--workers 1] [--concurrency 200]
                                          [--client-workers N] [--events 3] [--keep]

`runwsserver --workers N` (one process by default). Each connection is a different user's
session cookie, so every handshake costs the relay a session lookup (and the user, and their
groups for the inbox routes), as a browser's would. A process may hold 20,000 file descriptors
and one source address has about 28,000 ephemeral ports for one server port, so each load client
process holds at most PER_LOAD_CLIENT connections, from a loopback address of its own
(127.0.0.2, 127.0.0.3, ...). It measures:

- the accept rate: connections per second from the first handshake to the last `welcome`
  (authenticated, following the inbox), `--concurrency` handshakes in flight, in steps of at
  most STEP connections (the time between steps, spent reading RSS, is not counted);
- memory: the RSS of the relay's processes, idle before the first connection and once all are
  connected and idle; the marginal RSS per socket is the difference divided by the connections;
- delivery: notify() of a group holding every user, then announce() to all, `--events` times
  each: from the commit to the event's arrival in each socket (p50, p99 and max over the
  sockets), and how long the call took before its commit. The arrival is the kernel's receive
  timestamp (loadclient's "stamped" backend), and the load clients run at nice 19: on these two
  shared cores, reading 100,000 frames costs them as much CPU as writing them costs the relay,
  and their reads, which behind a network happen on other machines, yield to the relay's
  writes. When the load clients read each event is reported too;
- what went wrong: handshakes refused (by reason), connections the relay closed (by close code)
  and connections no longer open at the end, the warnings and errors in the relay's log (a
  worker that died and was restarted, a lost Redis); and how often, while connecting, a listen
  queue of the machine was full (the kernel dropped a SYN, resent a second later).

run.py runs it on its world with one relay process; alone, it builds a world of its own.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import MAIN_PYTHON, World, log  # noqa: E402
from loadclient import LoadClients  # noqa: E402

CLIENT_WORKERS = 4
PER_LOAD_CLIENT = 15_000  # under the 20,000 descriptors of a process and the ≈28,000 ports of an address
CONCURRENCY = 200
EVENTS = 3
STEP = 25_000
SEQ_BASE = 2_000_000_000  # apart from run.py's sequence numbers
CLIENT_NICENESS = 19  # the load clients yield the cores to the relay (see above)
IDLE_SECONDS = 2.0  # past the relay's hold after `welcome` (WSSERVER_RESUME_WAIT), its log lines written


def percentile(values, fraction):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]


def run(world, python, count=10_000, workers=1, client_workers=None, concurrency=CONCURRENCY, events=EVENTS):
    import systems

    if len(world.cookies) < count:
        raise ValueError(f"{count} connections need {count} users; the world has {len(world.cookies)}.")
    client_workers = client_workers or max(CLIENT_WORKERS, -(-count // PER_LOAD_CLIENT))
    sources = [f"127.0.0.{2 + n}" for n in range(client_workers)]
    log(f"== {count:,} connections to {workers} relay process(es), from {client_workers} load client processes "
        f"({sources[0]}–{sources[-1]})")
    relay = systems.Ours(world, workers=workers)
    server = relay.start()
    clients = LoadClients(
        python, workers=client_workers, backend="stamped", sources=sources, nice=CLIENT_NICENESS,
        log=open(world.logs / "loadclient-connections.log", "ab"),
    )
    result = {
        "connections": count, "workers": workers, "client_workers": client_workers, "concurrency": concurrency,
        "client_niceness": CLIENT_NICENESS,
    }
    try:
        time.sleep(IDLE_SECONDS)
        result["rss_start"] = server.rss_mib()
        result["rss_processes_start"] = len(server.pids)
        result.update(connect(server, relay, clients, world.cookies[:count], concurrency))
        time.sleep(IDLE_SECONDS)
        result["rss"] = server.rss_mib()
        result["kib_per_socket"] = (result["rss"] - result["rss_start"]) * 1024 / max(result["connected"], 1)
        log(f"  relay RSS: {result['rss_start']:.0f} MiB idle, {result['rss']:.0f} MiB with {result['connected']:,} connections "
            f"({len(server.pids)} processes): {result['kib_per_socket']:.2f} KiB per socket")
        result["notify"] = [deliver(server, clients, notify_group(world), SEQ_BASE + n, "notify()") for n in range(events)]
        result["announce"] = [deliver(server, clients, announce_all, SEQ_BASE + events + n, "announce()") for n in range(events)]
        result["all_received_seconds"] = [row["last"] for row in result["notify"]]
        closed = {}
        for row in result["notify"] + result["announce"]:
            for code, n in row["closed"].items():
                closed[code] = closed.get(code, 0) + n
        result["closed"] = closed
        result["open_at_end"] = result["announce"][-1]["open"] if events else result["connected"]
        result["rss_after"] = server.rss_mib()
    finally:
        clients.close()
        relay.stop()
    result["relay_problems"] = [line for line in server.output().splitlines() if " WARNING " in line or " ERROR " in line]
    log(f"  the relay logged {len(result['relay_problems'])} warnings and errors" + "".join(f"\n    {line}" for line in result["relay_problems"][:10]))
    return result


def connect(server, relay, clients, cookies, concurrency):
    """Open one connection per cookie, in steps; the accept rate, handshake times, errors, CPU."""
    count = len(cookies)
    connected, elapsed, client_cpu, relay_cpu, durations, errors = 0, 0.0, 0.0, 0.0, [], {}
    watch = harness.CpuWatch()
    overflows = harness.listen_overflows()
    for start in range(0, count, STEP):
        cpu = server.cpu()
        step = clients.connect(
            relay.url, min(STEP, count - start), cookies=cookies[start : start + STEP], origin=relay.origin,
            ready="welcome", concurrency=concurrency, timeout=120,
        )
        relay_cpu += server.cpu() - cpu
        connected += step["connected"]
        elapsed += step["elapsed"]
        client_cpu += step["cpu"]
        durations += step["durations"]
        for error, n in step["errors"].items():
            errors[error] = errors.get(error, 0) + n
        log(f"  {connected:,}/{count:,} connected, {connected / elapsed:,.0f}/s so far, relay RSS {server.rss_mib():,.0f} MiB; "
            f"refused: {errors or 'none'}")
    machine = watch.stop()
    durations.sort()
    result = {
        "connected": connected,
        "errors": errors,
        "connect_seconds": elapsed,
        "accept_rate": connected / elapsed,
        "handshake_p50": percentile(durations, 0.5) * 1000,
        "handshake_p99": percentile(durations, 0.99) * 1000,
        "relay_cpu_connect": relay_cpu / elapsed,
        "client_cpu_connect": client_cpu / elapsed,
        "foreign_cpu_connect": machine["foreign"],
        "listen_overflows": harness.listen_overflows() - overflows,
    }
    log(f"  connected {connected:,}/{count:,} in {elapsed:.1f} s: {result['accept_rate']:,.0f}/s "
        f"(handshake to welcome p50 {result['handshake_p50']:.0f} ms, p99 {result['handshake_p99']:.0f} ms; "
        f"relay CPU {result['relay_cpu_connect']:.0%}, load clients {result['client_cpu_connect']:.0%} in all, "
        f"other processes {machine['foreign']:.0%}; listen queue overflows on the machine: {result['listen_overflows']:,})")
    return result


def notify_group(world):
    """publish(seq, ts) for deliver(): notify() of the group of every user, marked in its data."""
    from notifications import notify

    group = world.groups[len(world.users)]
    return lambda seq, ts: notify(group, f"Benchmark event {seq}", data={"seq": seq, "ts": ts})


def announce_all(seq, ts):
    """publish(seq, ts) for deliver(): announce() to all, marked in its link (it takes no data)."""
    from notifications import announce

    announce(f"Benchmark announcement {seq}", url=f"/bench/?seq={seq}&ts={ts}")


def deliver(server, clients, publish, seq, name):
    """
    One event to every connection: publish(seq, ts) in a transaction, then each socket's time
    from the commit (an on_commit callback registered before the event's own) to its receipt,
    and the CPU the relay and the load clients spent until the last receipt.
    """
    from django.db import transaction

    clients.window(seq, seq + 1)
    cpu = server.cpu()
    watch = harness.CpuWatch()
    committed = []
    called = time.time_ns()
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.time_ns()))
        publish(seq, called)
    waited = clients.wait(timeout=30, latencies=True)
    relay_cpu, machine = server.cpu() - cpu, watch.stop()
    lag_us = (committed[0] - called) // 1000  # the latencies count from `called`, the time the event carries
    latencies = sorted(value - lag_us for value in waited["latencies"])
    exact = sorted(value - lag_us for value, known in zip(waited["latencies"], waited["exact"]) if known)
    reads = sorted(value - lag_us for value in waited["reads"])
    row = {
        "call_ms": lag_us / 1000,
        "received": waited["deliveries"],
        "expected": waited["expected"],
        "duplicates": waited["duplicates"],
        "p50": percentile(latencies, 0.5) / 1e6,
        "p99": percentile(latencies, 0.99) / 1e6,
        "last": latencies[-1] / 1e6 if waited["deliveries"] == waited["expected"] else float("inf"),
        "bounded": len(latencies) - len(exact),
        "exact_p99": percentile(exact, 0.99) / 1e6,
        "exact_last": exact[-1] / 1e6 if exact else float("nan"),
        "read_p50": percentile(reads, 0.5) / 1e6,
        "read_last": reads[-1] / 1e6 if waited["deliveries"] == waited["expected"] else float("inf"),
        "closed": waited["closed"],
        "open": waited["open"],
        "relay_cpu": relay_cpu,
        "client_cpu": sum(waited["cpu"]),
        "foreign_cpu": machine["foreign"],
    }
    log(f"  {name}: {row['received']:,}/{row['expected']:,} sockets had it; from the commit to its arrival: p50 {row['p50']:.2f} s, "
        f"p99 {row['p99']:.2f} s, last {row['last']:.2f} s ({row['bounded']:,} upper bounds; the others: p99 "
        f"{row['exact_p99']:.2f} s, last {row['exact_last']:.2f} s); read by the load clients: p50 {row['read_p50']:.2f} s, "
        f"last {row['read_last']:.2f} s (the call took {row['call_ms']:.1f} ms before its commit); "
        f"CPU until the last: relay {relay_cpu:.2f} s, load clients {row['client_cpu']:.2f} s, other processes "
        f"{machine['foreign']:.0%} of a core; received twice: {row['duplicates']:,}; closed: {row['closed'] or 'none'}, "
        f"open: {row['open']:,}")
    time.sleep(1)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="runwsserver --workers")
    parser.add_argument("--client-workers", type=int, default=None,
                        help=f"load client processes (default: at least {CLIENT_WORKERS}, {PER_LOAD_CLIENT:,} connections each at most)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="handshakes in flight")
    parser.add_argument("--events", type=int, default=EVENTS, help="notify() and announce() calls, each")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args()
    harness.raise_file_limit()
    facts = harness.machine_facts()
    log(f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['memory']}, Linux {facts['kernel']}, "
        f"Python {facts['python']}, load average {facts['load']:.2f}")
    world = World(keep=args.keep)
    try:
        world.setup_django()
        started = time.monotonic()
        world.create_users(args.connections)
        log(f"  {args.connections:,} users and sessions in {time.monotonic() - started:.1f} s")
        # The load client needs uvloop only, a dependency of the project: no peers' virtualenv.
        result = run(world, MAIN_PYTHON, args.connections, args.workers, args.client_workers, args.concurrency, args.events)
        import report

        print(report.connections_section(result, facts))
    finally:
        world.close()


if __name__ == "__main__":
    main()
