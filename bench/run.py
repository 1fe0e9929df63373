"""
The performance benchmark: this project's relay side by side with its peers, in one run.

    .venv/bin/python bench/run.py [--quick] [--keep] [--only ours,bare,channels]

It builds everything in a temporary directory (a Redis, a SQLite database, 10,000 users with
one session each; the peers' virtualenv bench/.venv-peers on first use), then starts each system
under test alone, one after the other, and drives it with the same load client
(bench/loadclient.py) and the same ≈200-byte messages (bench/payload.py):

- ours: `manage.py runwsserver` with 1 worker (and 2, when --workers exists), cookie sessions;
- bare: bench/bare_relay.py, websockets + Redis with no authentication or routing;
- Channels: daphne + channels_redis (bench/channels_peer), in its own virtualenv.

Then permessage-deflate off and on (bench/compression.py), 10,000 idle authenticated connections
on one relay process (bench/connections.py) and the cost of notify() in a request
(bench/notify_cost.py). It prints one table, with the ratios and
targets of the issue, and writes it to bench/results/latest.md. Details: docs/performance.md.
"""

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import BENCH_DIR, MAIN_PYTHON, World, log, machine_facts, peers_python, raise_file_limit, versions  # noqa: E402
from loadclient import LoadClients  # noqa: E402

USERS = 10_000
CLIENT_WORKERS = 2
LATENCY_RATE = 10  # events a second


class Params:
    def __init__(self, quick):
        self.quick = quick
        # Events per burst, the same for every system: ≈50,000 and ≈100,000 deliveries.
        self.burst = {100: 500, 1000: 100} if not quick else {100: 300, 1000: 50}
        self.repeats = 2 if quick else 5
        self.burst_budget = 10 if quick else 20  # seconds of bursts per system and client count
        self.latency_seconds = 8 if quick else 20
        self.connections = 10_000
        self.notify_runs = 50 if quick else 200


class Sequence:
    """Sequence numbers, never reused in a run (the relay remembers event ids it delivered)."""

    def __init__(self):
        self.next = 0

    def take(self, count):
        first = self.next
        self.next += count
        return first


def percentile(values, fraction):
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(fraction * (len(values) - 1))))
    return values[index]


def burst(system, clients, server, seqs, count, timeout):
    """Publish `count` events at once; deliveries/s from the first publish to the last arrival."""
    seq = seqs.take(count)
    clients.window(seq, seq + count)
    cpu = server.cpu()
    watch = harness.CpuWatch()
    started = time.time_ns()
    system.publisher.burst(seq, count)
    result = clients.wait(timeout)
    relay_cpu = server.cpu() - cpu
    machine = watch.stop()
    elapsed = max(1e-9, (result["last_ns"] - started) / 1e9) if result["last_ns"] else float("inf")
    return {
        "events": count,
        "rate": result["deliveries"] / elapsed,
        "elapsed": elapsed,
        "deliveries": result["deliveries"],
        "expected": result["expected"],
        "duplicates": result["duplicates"],
        "closed": result["closed"],
        "bytes": result["bytes"],
        "compressed": result["compressed"],
        "relay_cpu": relay_cpu / elapsed,
        "client_cpu": [cpu / elapsed for cpu in result["cpu"]],
        "foreign_cpu": machine["foreign"],
        "steal": machine["steal"],
    }


def throughput(system, clients, server, seqs, n_clients, params):
    """
    Bursts of the same size for every system (params.burst[n_clients] events to each of the
    clients), after one small warm-up burst: `repeats` of them, or fewer for a system so slow
    that they would take more than params.burst_budget seconds. The median run is reported.
    """
    count = params.burst[n_clients]
    burst(system, clients, server, seqs, max(5, count // 10), timeout=60)  # warm-up, not reported
    runs = []
    started = time.monotonic()
    while len(runs) < params.repeats and (not runs or time.monotonic() - started < params.burst_budget):
        runs.append(burst(system, clients, server, seqs, count, timeout=120))
        run = runs[-1]
        log(
            f"    {n_clients} clients, {run['events']} events: {run['rate']:,.0f} deliveries/s in {run['elapsed']:.2f} s "
            f"({run['deliveries']}/{run['expected']} delivered, {run['duplicates']} duplicates, closed {run['closed'] or 'none'}; "
            f"relay CPU {run['relay_cpu']:.0%}, load clients {', '.join(f'{c:.0%}' for c in run['client_cpu'])}, "
            f"other processes {run['foreign_cpu']:.0%}, steal {run['steal']:.0%})"
        )
    median = sorted(runs, key=lambda run: run["rate"])[len(runs) // 2]
    return dict(median, runs=[run["rate"] for run in runs])


def latency(clients, seqs, publish, seconds, rate=LATENCY_RATE):
    """Publish `rate` events a second for `seconds`; receive time − send time of every delivery."""
    count = int(seconds * rate)
    seq = seqs.take(count)
    clients.window(seq, seq + count)
    watch = harness.CpuWatch()
    publish(seq, count, rate)
    result = clients.wait(timeout=15, latencies=True)
    machine = watch.stop()
    values = sorted(result["latencies"])
    return {
        "p50": percentile(values, 0.50) / 1000,
        "p99": percentile(values, 0.99) / 1000,
        "max": (values[-1] / 1000) if values else float("nan"),
        "deliveries": result["deliveries"],
        "expected": result["expected"],
        "duplicates": result["duplicates"],
        "client_cpu": [cpu / result["wall"] for cpu in result["cpu"]],
        "foreign_cpu": machine["foreign"],
    }


def notify_publisher(world):
    """Paced notify() calls from Django (this process) to the group of every benchmark user."""
    from notifications import notify

    group = world.groups[len(world.users)]
    actor = world.users[0]

    def publish(seq, count, rate):
        from systems import pace

        pace(lambda n: notify(group, f"Benchmark event {seq + n}", actor=actor, data={"seq": seq + n, "ts": time.time_ns()}), count, rate)

    return publish


def measure(system, world, python, params, seqs):
    """Every row of the table for one system: its own process(es), alone on the machine."""
    log(f"== {system.label}")
    results = {}
    server = system.start()
    clients = LoadClients(python, workers=CLIENT_WORKERS, log=open(world.logs / f"loadclient-{system.key}.log", "ab"))
    try:
        cookies = world.cookies if system.authenticated else None
        for n_clients, before in ((100, 0), (1000, 100)):
            connected = clients.connect(
                system.url, n_clients - before, cookies=cookies[before:n_clients] if cookies else None,
                origin=system.origin, ready=system.ready, concurrency=100,
            )
            if connected["connected"] != n_clients - before:
                raise RuntimeError(f"{system.label}: {connected['connected']}/{n_clients - before} connected: {connected['errors']}")
            results[f"connect_{n_clients}"] = connected["connected"] / connected["elapsed"]
            log(f"  connected {n_clients} clients ({results[f'connect_{n_clients}']:,.0f}/s)")
            time.sleep(0.5)  # past the relay's 300 ms hold after `welcome`
            results[f"throughput_{n_clients}"] = throughput(system, clients, server, seqs, n_clients, params)
        results["latency"] = latency(clients, seqs, system.publisher.paced, params.latency_seconds)
        log(f"  latency at 1,000 clients x 10 events/s: p50 {results['latency']['p50']:.1f} ms, p99 {results['latency']['p99']:.1f} ms "
            f"({results['latency']['deliveries']}/{results['latency']['expected']} delivered; other processes {results['latency']['foreign_cpu']:.0%})")
        if system.key == "ours":
            results["e2e"] = latency(clients, seqs, notify_publisher(world), params.latency_seconds)
            log(f"  notify() to client: p50 {results['e2e']['p50']:.1f} ms, p99 {results['e2e']['p99']:.1f} ms "
                f"({results['e2e']['deliveries']}/{results['e2e']['expected']} delivered)")
        results["rss"] = server.rss_mib()
        results["processes"] = len(server.pids)
        log(f"  RSS at 1,000 clients: {results['rss']:.0f} MiB ({results['processes']} process(es))")
    finally:
        clients.close()
        system.stop()
    return results


def check_load_client(world, python, seqs, events=300, repeats=3):
    """
    The two load client backends against the bare relay, 100 clients, one load client process:
    deliveries/s and the load client's CPU per frame. A check that the default backend is cheap
    enough not to be what the benchmark measures.
    """
    import systems

    log("== load client check: raw vs websockets backend, bare relay, 100 clients, 1 process")
    rows = []
    for backend in ("raw", "websockets"):
        system = systems.Bare(world)
        server = system.start()
        clients = LoadClients(python, workers=1, backend=backend, log=open(world.logs / f"loadclient-check-{backend}.log", "ab"))
        try:
            clients.connect(system.url, 100, origin=system.origin, ready=system.ready)
            time.sleep(0.5)
            burst(system, clients, server, seqs, 50, timeout=60)
            runs = [burst(system, clients, server, seqs, events, timeout=120) for _ in range(repeats)]
            run = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]
            cpu_per_frame = run["client_cpu"][0] * run["elapsed"] / max(run["deliveries"], 1) * 1e6
            rows.append({"backend": backend, "rate": run["rate"], "client_cpu": run["client_cpu"][0], "relay_cpu": run["relay_cpu"],
                         "us_per_frame": cpu_per_frame})
            log(f"  {backend}: {run['rate']:,.0f} deliveries/s, load client CPU {run['client_cpu'][0]:.0%} "
                f"({cpu_per_frame:.1f} µs a frame), relay CPU {run['relay_cpu']:.0%}")
        finally:
            clients.close()
            system.stop()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases (about 3 minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    parser.add_argument("--only", default="", help="comma separated: ours, ours-2w, bare, channels, loadclient, compression, connections, notify (default: all)")
    parser.add_argument(
        "--channel-layers", default=None,
        help="channels_redis layers to run, comma separated: pubsub, core (default: both; --quick: pubsub)",
    )
    args = parser.parse_args()
    params = Params(args.quick)
    only = set(filter(None, args.only.split(",")))
    wanted = lambda name: not only or name in only or name.split("-")[0] in only  # noqa: E731
    layers = (args.channel_layers or ("pubsub" if args.quick else "pubsub,core")).split(",")
    started = time.monotonic()
    raise_file_limit()
    python = peers_python()
    facts = machine_facts()
    facts["started"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts["versions_ours"] = versions(MAIN_PYTHON, ["django", "websockets", "redis", "django-redis"])
    facts["versions_peers"] = versions(python, ["channels", "channels-redis", "daphne", "twisted", "redis", "uvloop"])
    world = World(keep=args.keep)
    try:
        world.setup_django()
        log(f"Creating {USERS:,} users and sessions in {world.database}...")
        world.create_users(USERS)
        import systems

        seqs = Sequence()
        workers_available = supports_workers()
        candidates = [systems.Ours(world)]
        if workers_available:
            candidates.append(systems.Ours(world, workers=2))
        candidates += [systems.Bare(world)] + [systems.Channels(world, python, layer) for layer in layers]
        results = {}
        for system in candidates:
            if wanted(system.key):
                results[system.key] = measure(system, world, python, params, seqs)
                results[system.key]["label"] = system.label
        extra = {}
        if wanted("loadclient"):
            extra["loadclient"] = check_load_client(world, python, seqs)
        if wanted("compression"):
            import compression

            extra["compression"] = compression.run(world, python, seqs)
        if wanted("connections"):
            import connections

            extra["connections"] = connections.run(world, python, params.connections)
        if wanted("notify"):
            import notify_cost

            extra["notify"] = notify_cost.run(world, params.notify_runs)
        facts["load_end"] = __import__("os").getloadavg()[0]
        facts["duration"] = time.monotonic() - started
        import report

        text = report.render(facts, params, results, extra, workers_available)
        print(text)
        out = BENCH_DIR / "results"
        out.mkdir(exist_ok=True)
        (out / "latest.md").write_text(text)
        log(f"wrote {out / 'latest.md'} ({facts['duration']:.0f} s)")
    finally:
        world.close()


def supports_workers():
    import subprocess

    help_text = subprocess.run([MAIN_PYTHON, "manage.py", "runwsserver", "--help"], cwd=harness.BASE_DIR, capture_output=True, text=True).stdout
    return "--workers" in help_text


if __name__ == "__main__":
    main()
