"""
Soak test: 10,000 sockets for an hour while relays die and Redis restarts; memory must stay
flat and no delivery may be lost.

    .venv/bin/python bench/soak.py [--duration 3600] [--sockets 10000] [--relays 2] [--churn-rate 10]
                                   [--event-rate 10] [--fault-every S] [--faults KIND,...] [--database URL] [--keep] ...

It builds its own world in a temporary directory as bench/chaos.py does, and from its parts
(Run, RelayProcess, Faults, the publishing command, the checker): a Redis it can restart
(notifications.devredis), a fresh SQLite database (or --database postgres://..., flushed), one
user per socket with a session of its own, in groups of about a hundred. The relays run with
DEBUG=1 and no ALLOWED_HOSTS (cookie handshakes from Origin http://localhost) under
bench.settings, whose only change that matters here lifts the per-address connection cap: every
socket comes from 127.0.0.1. Then, for --duration seconds:

- `--sockets` long-lived authenticated sockets (bench/soakclient.py, `--client-processes` of
  them: the raw-protocol client of bench/loadclient.py, cheap enough for two cores) spread over
  `--relays` runwsserver processes. Each reconnects after any disconnection with exponential
  backoff and full jitter, to whichever relay answers, and resumes from its last cursor, as
  the widget does;
- a steady stream of short-lived sockets on top (`--churn-rate` a second: connect, welcome,
  stay `--churn-stay` seconds, close);
- one publisher (chaos.py's `publish` command) calls notify() and announce() at `--event-rate`
  a second: to one user, a group, a few users, a group and a user, everyone;
- every `--fault-every` seconds (default: an eighth of the run, 15 s to 5 minutes; none in the
  last such stretch, so the end is measured recovered) a fault, each once the system recovered
  from the last, in turn: a relay SIGKILLed and restarted on its port, Redis restarted (it
  saves and reloads), the other relay SIGKILLed, Redis SIGKILLed with its data deleted
  (`--faults` picks others among chaos.py's).

Every `--sample-every` seconds it samples each relay's RSS (its process tree, from /proc), its
connections (the detailed /healthz of its operations address), the RSS of Redis and of the load
clients, the CPU each used, and prints a row of the table every `--table-every` seconds. After
publishing ends and the clients catch up, chaos.py's checker compares what each long-lived
socket received with what the database addressed to its user: lost (those a resync had told
the socket to reload apart), duplicated, out of order (by cursor), unauthorized, resyncs, out of
commit order.

It prints a summary: the relays' total RSS at half time and at the end (the second half should
be flat), each relay process's growth over its life and between faults (a fault may leave a
step, a high-water mark; a leak climbs while nothing happens), the delivery counts, how long
welcomes took, how much CPU other processes took from this shared-machine measurement, errors (ERROR lines and
tracebacks in the relays', the publisher's and the load clients' logs, counted by message;
protocol errors and unexpected frames seen by the clients; failed connection attempts, which
faults explain, by reason), and writes it all as JSON to bench/results/soak-<time>.json. The
exit status is non-zero when a delivery was lost (or duplicated, reordered, misdelivered, or
answered with resync) or a fault was not recovered from. Ctrl-C or SIGTERM stops everything it
started. Develop with short runs, e.g.

    .venv/bin/python bench/soak.py --duration 120 --sockets 2000
"""

import argparse
import asyncio
import datetime
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chaos  # noqa: E402
import harness  # noqa: E402

from notifications import cursors  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SETTINGS = "bench.settings"  # the demo site's, with the per-address connection cap lifted

# The faults, in turn; chaos.py's kinds and its Faults inject them and wait for the recovery.
FAULT_CYCLE = ["relay-sigkill", "redis-kept", "relay-sigkill", "redis-lost"]
FAULT_EVERY_LIMITS = (15.0, 300.0)  # the default spacing: an eighth of the run, within these
STATUS_EVERY = 0.5  # seconds between the clients' status reports (recovery is judged on them)
ANSWER_TIMEOUT = 60.0  # a load client answers a command within this (catch_up: its own timeout more)
START_TIMEOUT_MARGIN = 60.0  # connecting every socket may take sockets / ramp seconds, plus this
CATCH_UP_TIMEOUT = 60.0  # after publishing: outbox empty, every socket past its last event
# After a fault: relays reading Redis, every socket connected again. Longer than chaos.py's: the
# sockets come back with the widget's backoff (up to 30 s between attempts), thousands at once.
RECOVERY_TIMEOUT = 90.0
SETTLE = 1.0  # after catching up, time for stray duplicates to show
SETTLED_AFTER = 30.0  # a relay's RSS counts toward its growth from this long after it started
GROWTH_SPAN = 60.0  # and a growth rate is given only over at least this long
PROBLEMS_KEPT = 20  # verdicts with problems kept for the report (the others are dropped as judged)
LOG_ERRORS = re.compile(r"\] (ERROR|CRITICAL) |^Traceback \(most recent call last\)")


# The load clients -------------------------------------------------------------------------------


class Fleet:
    """
    The load client processes (bench/soakclient.py), each with its share of the long-lived
    sockets and of the short-lived ones; one command and one answer at a time per process.
    """

    def __init__(self, processes):
        self.processes = processes
        self.locks = [asyncio.Lock() for _ in processes]
        self.status = None  # the latest merged status (refreshed by watch())
        self.sockets = 0

    @classmethod
    async def start(cls, count, log_path):
        processes = []
        for _ in range(count):
            with open(log_path, "ab") as log:
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, str(Path(__file__).resolve().parent / "soakclient.py"),
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, limit=64 * 1024 * 1024,
                        start_new_session=True, preexec_fn=chaos.die_with_parent,
                    )
                )
        return cls(processes)

    @property
    def pids(self):
        return [process.pid for process in self.processes]

    async def ask(self, n, command, timeout=ANSWER_TIMEOUT):
        """Process n's answer to a command; RuntimeError if it exits or takes longer than `timeout`."""
        process = self.processes[n]
        async with self.locks[n]:
            process.stdin.write(json.dumps(command).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load client {process.pid} stopped answering (its log: soakclient.log)")
        return json.loads(line)

    async def ask_all(self, commands, timeout=ANSWER_TIMEOUT):
        return await asyncio.gather(*(self.ask(n, command, timeout) for n, command in enumerate(commands)))

    async def begin(self, urls, users, clock_start, ramp, churn_rate, churn_stay):
        """Share the users (and the churn) out, process n taking every n-th, and start them all."""
        count = len(self.processes)
        self.sockets = len(users)
        commands = []
        for n in range(count):
            clients = [[index, user_id, cookie] for index, (user_id, cookie) in enumerate(users) if index % count == n]
            commands.append(
                {
                    "cmd": "start", "urls": urls, "origin": chaos.ORIGIN, "clock": clock_start, "clients": clients,
                    "ramp": ramp / count, "churn": {"rate": churn_rate / count, "stay": churn_stay},
                }
            )
        await self.ask_all(commands)

    async def refresh(self):
        """Merge the processes' status reports: counts summed, reasons counted together."""
        merged = {}
        for answer in await self.ask_all([{"cmd": "status"}] * len(self.processes)):
            for key, value in answer.items():
                if isinstance(value, dict):
                    merged.setdefault(key, Counter()).update(value)
                else:
                    merged[key] = merged.get(key, 0) + value
        self.status = merged
        return merged

    async def watch(self):
        """Keep `status` fresh (the fault injector asks all_connected() between faults); until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(STATUS_EVERY)

    def all_connected(self):
        return self.status is not None and self.status["connected"] == self.sockets

    async def catch_up(self, targets, timeout):
        """{client index: position} each must reach; the indexes still behind after `timeout`."""
        count = len(self.processes)
        commands = [
            {"cmd": "catch_up", "timeout": timeout, "targets": {str(i): p for i, p in targets.items() if i % count == n}}
            for n in range(count)
        ]
        answers = await self.ask_all(commands, timeout + ANSWER_TIMEOUT)
        return sorted(index for answer in answers for index in answer["behind"])

    async def report(self, directory):
        """Each process pickles its clients' records into the run directory; the paths."""
        paths = [directory / f"soakclient-{n}.pickle" for n in range(len(self.processes))]
        await self.ask_all([{"cmd": "report", "path": str(path)} for path in paths], ANSWER_TIMEOUT * 5)
        return paths

    async def stop(self):
        """Ask every process to close its sockets and exit; kill any that does not (bounded)."""
        for n, process in enumerate(self.processes):
            if process.returncode is None:
                try:
                    process.stdin.write(b'{"cmd": "stop"}\n')
                    await process.stdin.drain()
                except (OSError, RuntimeError):
                    pass
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                pass
        self.kill()

    def kill(self):
        for process in self.processes:
            if process.returncode is None:
                chaos.kill_group(process)


# Sampling ---------------------------------------------------------------------------------------


class Sampler:
    """Every `every` seconds: RSS and CPU of each relay, Redis and the load clients; connections; counts."""

    def __init__(self, run, fleet, started, every):
        self.run = run
        self.fleet = fleet
        self.started = started  # Clock time when publishing began: samples count from there
        self.every = every
        self.samples = []
        self.cpu = CpuAccount()
        self._cpu = {}

    async def sample_forever(self):
        while True:
            await self.sample()
            await asyncio.sleep(max(0.0, self.started + len(self.samples) * self.every - self.run.clock.now()))

    async def sample(self):
        now = self.run.clock.now()
        self.cpu.look()
        healths = await asyncio.gather(*(asyncio.to_thread(relay.health) for relay in self.run.relays))
        relays = []
        for relay, health in zip(self.run.relays, healths):
            pids = harness.process_tree(relay.process.pid) if relay.process.poll() is None else []
            rss = harness.rss_kib(pids)
            running = rss > 0  # killed and not yet reaped: a zombie, with no memory
            relays.append(
                {
                    "index": relay.index, "pid": relay.process.pid, "running": running,
                    "rss_mib": rss / 1024,
                    "cpu": self._cpu_share(("relay", relay.process.pid), pids, now) if running else None,
                    "connections": (health or {}).get("connections"),
                }
            )
        status = self.fleet.status or {}
        redis = self.run.redis
        self.samples.append(
            {
                "t": now - self.started,
                "relays": relays,
                "relays_rss_mib": sum(relay["rss_mib"] for relay in relays),
                "redis_rss_mib": harness.rss_kib([redis.pid]) / 1024 if redis is not None and redis.poll() is None else 0.0,
                "clients_rss_mib": harness.rss_kib(self.fleet.pids) / 1024,
                "clients_cpu": self._cpu_share("clients", self.fleet.pids, now),
                "connected": status.get("connected", 0),
                "frames": status.get("frames", 0),
                "churn_welcomed": (status.get("churn") or {}).get("welcomed", 0),
            }
        )

    def _cpu_share(self, key, pids, now):
        """
        Share of one core these processes used since the last sample (None on the first, and
        over less than a second: CPU time comes in ticks of 10 ms).
        """
        seconds = harness.cpu_seconds(pids)
        previous = self._cpu.get(key)
        if previous is not None and now - previous[1] < 1.0:
            return None
        self._cpu[key] = (seconds, now)
        if previous is None:
            return None
        return (seconds - previous[0]) / (now - previous[1])


class Table:
    """
    The RSS table: a row every `every` seconds' worth of samples, the rates since the row
    before, the faults that struck in between in the last column.
    """

    def __init__(self, relays, every, sample_every):
        self.relays = relays
        self.every = every
        self.slack = sample_every / 2  # samples are taken about, not exactly, every sample_every
        self.printed = None  # the sample of the last row

    def header(self):
        per_relay = "  ".join(f"relay{n} MiB/conns/CPU" for n in range(self.relays))
        print(f"\n{'t s':>6}  {'relays MiB':>10}  {per_relay}  {'Redis MiB':>9}  {'clients MiB/CPU':>15}  "
              f"{'connected':>9}  {'deliveries/s':>12}  {'short/s':>7}  faults", flush=True)

    def maybe_print(self, sample, faults, force=False):
        """A row for this sample if one is due (or forced); `faults`: (FaultRecord, seconds into the run)."""
        previous = self.printed
        if previous is not None and sample["t"] - previous["t"] < (0.5 if force else self.every - self.slack):
            return
        if previous is None:
            rates, recent = f"{'-':>12}  {'-':>7}", []
        else:
            span = sample["t"] - previous["t"]
            rates = (
                f"{(sample['frames'] - previous['frames']) / span:>12.0f}  "
                f"{(sample['churn_welcomed'] - previous['churn_welcomed']) / span:>7.1f}"
            )
            recent = [f"{at:.0f}s {chaos.FAULTS[r.kind]}" for r, at in faults if previous["t"] < at <= sample["t"]]
        relays = "  ".join(
            f"{r['rss_mib']:>7.0f}/{'-' if r['connections'] is None else r['connections']:>5}/{percent(r['cpu']):>4}"
            for r in sample["relays"]
        )
        print(
            f"{sample['t']:>6.0f}  {sample['relays_rss_mib']:>10.0f}  {relays:>{21 * self.relays}}  "
            f"{sample['redis_rss_mib']:>9.0f}  {sample['clients_rss_mib']:>9.0f}/{percent(sample['clients_cpu']):>5}  "
            f"{sample['connected']:>9}  {rates}  {'; '.join(recent)}",
            flush=True,
        )
        self.printed = sample


class CpuAccount:
    """
    CPU used by this run's processes (this one and all it started) and by the machine, from the
    first look() to the last. harness.CpuWatch compares two totals of the process tree, which
    relays killed and restarted in between would throw off; this adds up each process's own
    CPU time as last seen (a killed one loses at most its last interval's).
    """

    def __init__(self):
        self.first = self.last = None  # (monotonic, machine busy seconds)
        self.processes = {}  # pid → [CPU seconds when first seen (0 if born since), when last seen]

    def look(self):
        now, (busy, _) = time.monotonic(), harness.machine_busy_seconds()
        born_since = self.first is not None
        for pid in harness.process_tree(os.getpid()):
            seconds = harness.cpu_seconds([pid])
            self.processes.setdefault(pid, [0.0 if born_since else seconds, seconds])[1] = seconds
        self.first = self.first or (now, busy)
        self.last = (now, busy)

    def cores(self):
        """{"machine", "ours", "foreign"}: cores used on average (2.0: two cores busy all along)."""
        wall = max(self.last[0] - self.first[0], 1e-9)
        machine = (self.last[1] - self.first[1]) / wall
        ours = sum(last - first for first, last in self.processes.values()) / wall
        return {"machine": machine, "ours": ours, "foreign": max(0.0, machine - ours)}


def percent(share):
    return "-" if share is None else f"{share:.0%}"


# The run ----------------------------------------------------------------------------------------


@dataclass
class SoakPlan:
    duration: float
    sockets: int
    relays: int
    client_processes: int
    churn_rate: float
    churn_stay: tuple
    event_rate: float
    fault_every: float
    groups: int
    ramp: float
    sample_every: float
    table_every: float
    seed: int
    fault_cycle: list  # chaos.py's fault kinds, struck in turn
    faults: list = field(default_factory=list)  # chaos.FaultRecord, each from when it strikes (its `at`: Clock time)
    started: float = 0.0  # Clock time when publishing began: the run's times count from there

    def fault_times(self):
        """(FaultRecord, seconds into the run) of every fault so far."""
        return [(record, record.at - self.started) for record in self.faults]

    @property
    def events(self):
        return round(self.event_rate * self.duration)

    def publishing_plan(self):
        """chaos.py's Plan for its publishing command: one process, `events` at `event_rate`."""
        return chaos.Plan(
            events=self.events, clients=self.sockets, relays=self.relays, publishers=1, duration=self.duration,
            faults=[], seed=self.seed,
        )

    def describe(self):
        return (
            f"duration {self.duration:.0f} s · sockets {self.sockets} over {self.relays} relays "
            f"({self.client_processes} client processes) · short-lived {self.churn_rate:g}/s for "
            f"{self.churn_stay[0]:g}-{self.churn_stay[1]:g} s · events {self.event_rate:g}/s ({self.events}) · "
            f"groups {self.groups} · a fault every {self.fault_every:.0f} s ({', '.join(self.fault_cycle)}, in turn)"
        )


async def soak(plan, run, users):
    """
    Relays, clients, publisher, faults for the duration; catch up; judge. (judgement, samples,
    client status, seconds publishing took).
    """
    publishing = plan.publishing_plan()
    run.start_publishers(publishing)
    await run.start_relays(plan.relays)
    fleet = await Fleet.start(plan.client_processes, run.dir / "soakclient.log")
    background = []
    try:
        urls = [relay.url for relay in run.relays]
        await fleet.begin(urls, users, run.clock.start, plan.ramp, plan.churn_rate, plan.churn_stay)
        background.append(asyncio.create_task(fleet.watch()))
        if not await chaos.wait_until(fleet.all_connected, plan.sockets / plan.ramp + START_TIMEOUT_MARGIN, interval=0.5):
            raise RuntimeError(f"only {fleet.status['connected']} of {plan.sockets} sockets connected")
        print(f"{run.clock.now():6.1f} s  {plan.sockets} sockets connected", flush=True)
        await run.wait_publishers_ready()
        run.go()
        started = plan.started = run.clock.now()
        print(f"{started:6.1f} s  publishing {plan.events} events for {plan.duration:.0f} s", flush=True)
        sampler = Sampler(run, fleet, started, plan.sample_every)
        table = Table(plan.relays, plan.table_every, plan.sample_every)
        table.header()
        background.append(asyncio.create_task(sampler.sample_forever()))
        background.append(asyncio.create_task(print_rows(sampler, table, plan)))
        await inject_faults(plan, run, fleet, started)
        await asyncio.sleep(max(0.0, started + plan.duration - run.clock.now()))
        if run.clock.now() - started - sampler.samples[-1]["t"] > plan.sample_every / 2:
            await sampler.sample()  # the end, unless the last sample is it
        table.maybe_print(sampler.samples[-1], plan.fault_times(), force=True)
        cpu = sampler.cpu.cores()
        for task in background[1:]:
            task.cancel()
        await chaos.wait_publishers(run, publishing)
        published_in = run.clock.now() - started
        print(f"{run.clock.now():6.1f} s  publisher done ({published_in:.0f} s)", flush=True)
        truth, behind = await catch_up(run, fleet, users)
        status = await fleet.refresh()
        paths = await fleet.report(run.dir)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await fleet.stop()
    judgement = await asyncio.to_thread(Judgement.of, paths, truth, chaos.CommitOrder.load(run.dir, 1), run.clock)
    judgement.behind = behind
    status["cpu_cores"] = cpu
    return judgement, sampler.samples, status, published_in


async def print_rows(sampler, table, plan):
    """A row of the table whenever a sample falls due for one; until cancelled."""
    shown = 0
    while True:
        while shown < len(sampler.samples):
            table.maybe_print(sampler.samples[shown], plan.fault_times())
            shown += 1
        await asyncio.sleep(0.5)


async def inject_faults(plan, run, fleet, started):
    """
    A fault every `fault_every` seconds while the run lasts (none in its last `fault_every`, so
    the end is measured recovered), each once the system recovered from the last.
    """
    faults = chaos.Faults(run, fleet.all_connected, RECOVERY_TIMEOUT)
    plan.faults = faults.records  # each record is there from the moment its fault strikes
    for n in range(int(plan.duration // plan.fault_every)):
        at = started + plan.fault_every * (n + 1)
        if at >= started + plan.duration - plan.fault_every:
            break
        await asyncio.sleep(max(0.0, at - run.clock.now()))
        kind = plan.fault_cycle[n % len(plan.fault_cycle)]
        record = await faults.inject(kind)
        recovered = f"recovered in {record.recovered_in:.1f} s" if record.recovered_in is not None else "NOT RECOVERED"
        print(f"{record.at - started:6.0f} s  {chaos.FAULTS[kind]}: {record.detail}; {recovered}", flush=True)


async def catch_up(run, fleet, users):
    """
    Wait, bounded, until the outbox is empty and every long-lived socket has received up to
    the last event addressed to its user; (Truth, indexes of the sockets still behind).
    """
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while await asyncio.to_thread(chaos.outbox_size) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    truth = await asyncio.to_thread(chaos.Truth.load)
    targets = {index: truth.last_position(user_id) for index, (user_id, _) in enumerate(users)}
    behind = await fleet.catch_up(targets, max(1.0, deadline - time.monotonic()))
    await asyncio.sleep(SETTLE)
    print(f"{run.clock.now():6.1f} s  caught up" + (f" except {len(behind)} socket(s)" if behind else ""), flush=True)
    return truth, behind


# Judging ------------------------------------------------------------------------------------------


@dataclass
class Judgement:
    """chaos.py's verdicts summed over every long-lived socket; the first ones with problems kept."""

    totals: Counter
    lost_after_resync: int  # of totals["lost"]: events a resync had told their socket to reload
    problems: list  # chaos.Verdict
    deliveries: int
    connections: int
    close_codes: Counter
    moved: int
    client_errors: list
    truth: chaos.Truth  # for printing the problems
    commit_order: chaos.CommitOrder
    welcome_seconds: list = field(default_factory=list)  # sorted: every socket's wait for its welcome
    behind: list = field(default_factory=list)

    @classmethod
    def of(cls, paths, truth, commit_order, clock):
        """Each load client's records, one socket at a time, through chaos.judge."""
        judgement = cls(Counter(), 0, [], 0, 0, Counter(), 0, [], truth, commit_order)
        for path in paths:
            with open(path, "rb") as file:
                records = pickle.load(file)
            for record in records["clients"]:
                verdict = chaos.judge(as_chaos_client(record, clock), truth, commit_order)
                judgement.add(verdict)
                judgement.lost_after_resync += lost_after_resync(verdict, truth, set(record["resynced_on"]))
            judgement.welcome_seconds += records["welcome_seconds"]
        judgement.welcome_seconds.sort()
        return judgement

    def add(self, verdict):
        client = verdict.client
        self.totals.update(verdict.counts)
        self.deliveries += len(client.frames)
        self.connections += len(client.connections)
        self.close_codes.update(connection.close_code for connection in client.connections)
        self.moved += verdict.moved
        self.client_errors += [f"socket {client.index}: {error}" for error in client.errors]
        if any(verdict.counts.values()) and len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(verdict)


def lost_after_resync(verdict, truth, resynced_on):
    """
    How many of a socket's lost events a resync had told it to reload (as the widget would,
    over HTTP): an event published before a connection's welcome was that connection's resume
    to replay, so it counts when that connection got `resync`; one published after the last
    welcome, when the last connection did. The rest were lost silently.
    """
    if not resynced_on:
        return 0
    welcomes = [cursors.position(connection.welcome) for connection in verdict.client.connections]
    count = 0
    for event_id in verdict.lost:
        position = truth.positions.get(event_id)
        if position is None:
            continue  # never published: no resync covers that
        owner = next((n for n, welcome in enumerate(welcomes) if welcome >= position), len(welcomes) - 1)
        count += owner in resynced_on
    return count


def as_chaos_client(record, clock):
    """A load client's record of one socket as chaos.py's ChaosClient, which its checker reads."""
    arrivals = zip(record["ids"], record["positions"], record["connection_of"], record["arrived"])
    frames = [chaos.Frame(event_id, position, connection, at) for event_id, position, connection, at in arrivals]
    connections = [chaos.Connection(**connection) for connection in record["connections"]]
    return chaos.ChaosClient(
        record["index"], record["user_id"], "", [], clock, frames=frames, connections=connections,
        resyncs=record["resyncs"], errors=record["errors"], failed_attempts=Counter(record["failed"]),
    )


def log_errors(paths):
    """
    (count, {message: count}) of the ERROR/CRITICAL lines and tracebacks in these logs, the
    messages with their timestamps, numbers and paths blanked so that repeats count together
    (a Redis restart makes every relay log the same loss).
    """
    count, messages = 0, Counter()
    for path in paths:
        try:
            lines = path.open(errors="replace")
        except FileNotFoundError:
            continue
        with lines:
            for line in lines:
                if LOG_ERRORS.search(line):
                    count += 1
                    message = re.sub(r"^\[[^]]*\] ", "", line.strip())
                    message = re.sub(r"\S*/\S*/\S*|\d+\.\d+|\d{4,}", "…", message)[:300]  # paths, times, ids
                    messages[message] += 1
    return count, messages


# The report -------------------------------------------------------------------------------------


def rss_summary(samples, duration, slack, faults):
    """
    The relays' total RSS at half time and at the end, and each relay process's own growth from
    SETTLED_AFTER seconds into its life (restarts reset a relay's memory, so totals alone could
    hide a leak: a process's own slope cannot), overall and between faults: a fault may leave a
    step (a high-water mark), a leak climbs while nothing happens. `faults`: (start, end) of each
    fault and its recovery, in seconds into the run.
    """
    measured = [sample for sample in samples if sample["t"] <= duration + slack] or samples
    half = min(measured, key=lambda sample: abs(sample["t"] - duration / 2))
    end = measured[-1]
    processes = {}
    for sample in measured:
        for relay in sample["relays"]:
            if relay["running"]:
                processes.setdefault((relay["index"], relay["pid"]), []).append((sample["t"], relay["rss_mib"]))
    lives = []
    for (index, pid), points in processes.items():
        settled = [point for point in points if point[0] >= points[0][0] + SETTLED_AFTER] or points
        (t0, rss0), (t1, rss1) = settled[0], settled[-1]
        lives.append(
            {
                "relay": index, "pid": pid, "from": points[0][0], "to": points[-1][0], "rss_first": rss0, "rss_last": rss1,
                "rss_max": max(rss for _, rss in points),
                "growth_mib_per_hour": (rss1 - rss0) / (t1 - t0) * 3600 if t1 - t0 >= GROWTH_SPAN else None,
                "quiet_growth_mib_per_hour": quiet_growth(points, faults, duration),
            }
        )
    half_rss, end_rss = half["relays_rss_mib"], end["relays_rss_mib"]
    return {
        "half": {"t": half["t"], "relays_rss_mib": half_rss},
        "end": {"t": end["t"], "relays_rss_mib": end_rss},
        "growth_second_half_mib": end_rss - half_rss,
        "growth_second_half_percent": (end_rss / half_rss - 1) * 100 if half_rss else None,
        "peak_relays_rss_mib": max(sample["relays_rss_mib"] for sample in measured),
        "relay_processes": lives,
    }


def quiet_growth(points, faults, duration):
    """
    MiB an hour that a process's RSS grew in the stretches with no fault: from SETTLED_AFTER
    seconds after a fault recovered (or after the start) to the next fault (or the end). None
    when those stretches add up to less than GROWTH_SPAN.
    """
    edges = [0.0] + [edge for start, end in faults for edge in (start, end)] + [duration]
    grown = spent = 0.0
    for begin, stop in zip(edges[::2], edges[1::2]):
        inside = [(t, rss) for t, rss in points if begin + SETTLED_AFTER <= t <= stop]
        if len(inside) >= 2:
            grown += inside[-1][1] - inside[0][1]
            spent += inside[-1][0] - inside[0][0]
    return grown / spent * 3600 if spent >= GROWTH_SPAN else None


def fault_spans(plan):
    """(start, end) of each fault and its recovery, in seconds into the run (a fault not recovered: to the end)."""
    return [
        (at, at + record.recovered_in if record.recovered_in is not None else plan.duration)
        for record, at in plan.fault_times()
    ]


def report(plan, run, judgement, samples, status, published_in):
    """Print the summary; the results as a dict (written to bench/results/ by the caller); whether it passed."""
    totals = {name: judgement.totals[name] for name in chaos.COUNTS}
    rss = rss_summary(samples, plan.duration, plan.sample_every / 2, fault_spans(plan))
    relay_logs = [relay.log_path for relay in run.relays]
    log_count, log_messages = log_errors(relay_logs + [run.dir / "publisher-0.log", run.dir / "soakclient.log"])
    churn = dict(status.get("churn", {}))
    client_error_count = status.get("errors", 0) + sum(status.get("churn_errors", {}).values())
    print()
    print(plan.describe())
    print(
        f"relays' RSS: {rss['half']['relays_rss_mib']:.0f} MiB at {rss['half']['t']:.0f} s (half time), "
        f"{rss['end']['relays_rss_mib']:.0f} MiB at {rss['end']['t']:.0f} s: {rss['growth_second_half_mib']:+.0f} MiB "
        f"({rss['growth_second_half_percent']:+.1f}%) over the second half; peak {rss['peak_relays_rss_mib']:.0f} MiB"
    )
    for life in rss["relay_processes"]:
        print(
            f"  relay {life['relay']} pid {life['pid']}: {life['from']:.0f}-{life['to']:.0f} s, "
            f"{life['rss_first']:.0f} → {life['rss_last']:.0f} MiB once settled (max {life['rss_max']:.0f}), "
            f"{per_hour(life['growth_mib_per_hour'])}, between faults {per_hour(life['quiet_growth_mib_per_hour'])}"
        )
    print(" · ".join(f"{name} {totals[name]}" for name in chaos.COUNTS))
    silently = totals["lost"] - judgement.lost_after_resync
    print(f"lost: {judgement.lost_after_resync} after a resync (the socket was told to reload), {silently} silently")
    print(
        f"deliveries to long-lived sockets {judgement.deliveries} · their connections {judgement.connections} "
        f"(close codes: {format_counts(judgement.close_codes)}) · frames whose cursor is not the event's stored position "
        f"{judgement.moved} · still behind after catching up {len(judgement.behind)}"
    )
    welcomes = judgement.welcome_seconds
    print(
        f"welcomes: {len(welcomes)}, {percentile(welcomes, 0.5):.3f} s after connecting at the median, "
        f"{percentile(welcomes, 0.99):.2f} s at p99, {percentile(welcomes, 1.0):.2f} s at most"
    )
    print(
        f"short-lived sockets: {churn.get('welcomed', 0)} welcomed of {churn.get('opened', 0)} opened "
        f"({churn.get('skipped', 0)} skipped: too many open); failed: {format_counts(status.get('churn_failed', {}))}; "
        f"closed by the relay before their time: {format_counts(status.get('churn_closed_early', {}))}"
    )
    cpu = status["cpu_cores"]
    print(
        f"CPU while publishing, in cores (of {os.cpu_count()}): the machine {cpu['machine']:.2f}, this run's processes "
        f"{cpu['ours']:.2f}, other processes {cpu['foreign']:.2f}"
    )
    print(
        f"errors: {log_count} ERROR/traceback line(s) in the logs · {client_error_count} client-side (protocol errors, "
        f"unexpected frames) · failed connection attempts of long-lived sockets: {format_counts(status.get('failed', {}))}"
    )
    for message, n in log_messages.most_common(10):
        print(f"  {n}× in the logs: {message}")
    for line in judgement.client_errors[:10] + list(status.get("churn_errors", {}))[:5]:
        print(f"  client: {line}")
    not_recovered = [(record, at) for record, at in plan.fault_times() if record.recovered_in is None]
    failures = [name for name in chaos.COUNTS if totals[name]]
    failures += [f"{chaos.FAULTS[r.kind]} at {at:.0f} s: no recovery" for r, at in not_recovered]
    if judgement.behind:
        failures.append(f"{len(judgement.behind)} socket(s) behind")
    if failures:
        print("FAILED: " + "; ".join(failures))
        chaos.print_problems(judgement.problems, judgement.truth, judgement.commit_order, run)
    else:
        print("PASSED")
    results = {
        "plan": {key: value for key, value in asdict(plan).items() if key != "faults"},
        "faults": [asdict(record) | {"at": at} for record, at in plan.fault_times()],
        "published_in": published_in,
        "counts": totals,
        "lost_after_resync": judgement.lost_after_resync,
        "deliveries": judgement.deliveries,
        "connections": judgement.connections,
        "close_codes": {str(code): n for code, n in judgement.close_codes.items()},
        "moved": judgement.moved,
        "behind": len(judgement.behind),
        "welcome_seconds": {q: percentile(welcomes, f) for q, f in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))},
        "rss": rss,
        "errors": {
            "log_lines": log_count, "log_messages": dict(log_messages), "client": client_error_count,
            "client_first": judgement.client_errors[:20], "churn": dict(status.get("churn_errors", {})),
        },
        "failed_attempts": dict(status.get("failed", {})),
        "cpu_cores": cpu,
        "short_lived": {
            "counts": churn, "failed": dict(status.get("churn_failed", {})),
            "closed_early": dict(status.get("churn_closed_early", {})),
        },
        "samples": samples,
        "failures": failures,
        "passed": not failures,
    }
    return results, not failures


def per_hour(growth):
    return "-" if growth is None else f"{growth:+.0f} MiB/h"


def percentile(values, fraction):
    """Of sorted values; nan when there are none."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]


def format_counts(counts):
    """"1000×3, 1006×2"; a close code of None is a connection still open."""
    ordered = sorted(counts.items(), key=lambda item: str(item[0]))
    return ", ".join(f"{'open' if key is None else key}×{n}" for key, n in ordered) or "none"


def write_results(results, machine):
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"soak-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": machine, **results}, indent=1, default=str))
    return path


# Entry point ------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3600, help="seconds of publishing and faults (default 3600)")
    parser.add_argument("--sockets", type=int, default=10_000, help="long-lived sockets, one user each (default 10000)")
    parser.add_argument("--relays", type=int, default=2)
    parser.add_argument("--client-processes", type=int, default=2, help="load client processes (default 2)")
    parser.add_argument("--churn-rate", type=float, default=10, help="short-lived sockets a second (default 10)")
    parser.add_argument(
        "--churn-stay", type=float, nargs=2, default=(1.0, 5.0), metavar=("MIN", "MAX"),
        help="seconds a short-lived socket stays open (default 1 5)",
    )
    parser.add_argument("--event-rate", type=float, default=10, help="notify()/announce() calls a second (default 10)")
    parser.add_argument(
        "--fault-every", type=float, help="seconds between faults (default: an eighth of the duration, 15 to 300 s)"
    )
    parser.add_argument(
        "--faults", default=",".join(FAULT_CYCLE),
        help=f"the faults to strike in turn, among {', '.join(chaos.FAULTS)} (default {','.join(FAULT_CYCLE)})",
    )
    parser.add_argument("--groups", type=int, help="groups the users fall in (default: one per 100 sockets)")
    parser.add_argument("--ramp", type=float, default=500, help="new long-lived sockets a second at the start (default 500)")
    parser.add_argument("--sample-every", type=float, default=5, help="seconds between RSS samples (default 5)")
    parser.add_argument(
        "--table-every", type=float, help="seconds between rows of the table (default: a twentieth of the duration)"
    )
    parser.add_argument("--seed", type=int, help="seeds the publisher's choices (default: random, printed)")
    parser.add_argument("--database", help="a postgres://... URL instead of a fresh SQLite file: ITS TABLES ARE FLUSHED")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory even when the run passes")
    args = parser.parse_args(argv)
    if args.relays < 2 or args.sockets < 1 or args.client_processes < 1 or args.event_rate <= 0 or args.duration <= 0:
        parser.error("needs at least 2 relays, 1 socket, 1 client process, a positive event rate and duration")
    args.faults = [kind.strip() for kind in args.faults.split(",") if kind.strip()]
    if not args.faults or set(args.faults) - chaos.FAULTS.keys():
        parser.error(f"--faults: a comma-separated list of {', '.join(chaos.FAULTS)}")
    return args


def make_plan(args):
    fault_every = args.fault_every or min(max(args.duration / 8, FAULT_EVERY_LIMITS[0]), FAULT_EVERY_LIMITS[1])
    sample_every = min(args.sample_every, args.duration / 10)
    return SoakPlan(
        duration=args.duration,
        sockets=args.sockets,
        relays=args.relays,
        client_processes=args.client_processes,
        churn_rate=args.churn_rate,
        churn_stay=tuple(args.churn_stay),
        event_rate=args.event_rate,
        fault_every=fault_every,
        groups=args.groups or max(1, args.sockets // 100),
        ramp=args.ramp,
        sample_every=sample_every,
        table_every=args.table_every or max(sample_every, round(args.duration / 20 / sample_every) * sample_every),
        seed=args.seed if args.seed is not None else random.randrange(1_000_000),
        fault_cycle=args.faults,
    )


def main(argv):
    args = parse_args(argv)
    plan = make_plan(args)
    hard = harness.raise_file_limit()
    if plan.sockets / plan.client_processes + 1000 > hard:
        sys.exit(f"{plan.sockets} sockets over {plan.client_processes} process(es) exceed the open-file limit {hard}")
    directory = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp" if os.path.isdir("/tmp") else None))
    database_url = args.database or f"sqlite:///{directory / 'soak.sqlite3'}"
    run = chaos.Run(directory, database_url)
    run.env["DJANGO_SETTINGS_MODULE"] = SETTINGS
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    print(f"soak: {plan.describe()} · seed {plan.seed} · in {directory}", flush=True)
    machine = harness.machine_facts()
    passed = False
    try:
        run.start_redis()
        chaos.setup_django(run, database_url)
        began = time.monotonic()
        users = chaos.create_users(plan.sockets, plan.groups)
        print(f"{plan.sockets} users with sessions in {time.monotonic() - began:.1f} s", flush=True)
        judgement, samples, status, published_in = asyncio.run(soak(plan, run, users))
        results, passed = report(plan, run, judgement, samples, status, published_in)
        print(f"results: {write_results(results, machine)}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping everything", flush=True)
        return 130
    finally:
        chaos.finish(run, directory, passed, args.keep)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
