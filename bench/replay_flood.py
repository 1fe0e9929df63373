"""
Replay amplification: what hostile resumes cost everyone else.

    .venv/bin/python bench/replay_flood.py [--events 14000] [--hostile 20] [--seconds 15] [--keep]

One relay process, a stream full to its retention (NOTIFICATIONS_STREAM_MAXLEN, 10,000 entries)
and more events in the database only, all from the last hour and none for the hostile users, who
joined before them. Each hostile user keeps one socket resuming from `0-0` again and again
(connect, `resume "0-0"`, wait for the answer, close, reconnect: a socket replays once), each
replay having the whole stream and the database's older part to look through, for nothing:
first all `--hostile` at once every second (20 replays in flight together, as often as the
per-user rate allows), then as fast as they can (most are refused with `rate_limited`; what is
left is a reconnect storm). Meanwhile a bystander opens a cookie-authenticated socket
(handshake to `welcome`) and pings on an open one, several times a second.

It prints the bystander's handshake and ping round trip, median and 90th percentile, idle,
under each flood, and idle again, the ratios to idle, how many resumes the hostile sockets got
answered (and refused), and the relay's CPU. The target (docs/security.md): the bystander's
handshake and ping within 2× their idle values under 20 hostile replays at once.
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import ORIGIN, World, log  # noqa: E402

SAMPLE_EVERY = 0.1  # seconds between the bystander's measurements
IDLE_SECONDS = 8.0
RESULTS = Path(__file__).resolve().parent / "results"


def build_history(world, events, hostile):
    """`events` events from the last hour, for users other than the hostile ones, published now."""
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.utils import timezone

    from notifications.models import Event, Recipient
    from notifications.outbox import catch_up

    hour_ago = timezone.now() - timedelta(hours=1)
    hostile_users = world.users[:hostile]
    User.objects.filter(pk__in=[u.pk for u in hostile_users]).update(date_joined=hour_ago - timedelta(minutes=5))
    others = world.users[hostile + 1 :]
    created = Event.objects.bulk_create(
        [Event(title=f"history {n}", created_at=hour_ago + timedelta(seconds=n * 3600 / events)) for n in range(events)],
        batch_size=1000,
    )
    Recipient.objects.bulk_create(
        [Recipient(event=event, user=others[n % len(others)]) for n, event in enumerate(created)], batch_size=1000
    )
    published = 0
    while Event.objects.filter(stream_position__isnull=True).exists():
        published += catch_up(card=False)  # the outbox, oldest first: the stream keeps the newest 10,000
    log(f"  history: {published:,} events published; the stream keeps about 10,000, the database all")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


async def bystander(url, cookie, seconds):
    """Handshake (to welcome) and ping round trip samples, in ms, for `seconds`."""
    from websockets.asyncio.client import connect

    handshakes, pings = [], []
    async with connect(url, additional_headers={"Cookie": cookie, "Origin": ORIGIN}) as steady:
        await steady.recv()  # welcome
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with connect(url, additional_headers={"Cookie": cookie, "Origin": ORIGIN}) as fresh:
                await fresh.recv()  # welcome
                handshakes.append((time.perf_counter() - started) * 1000)
            n += 1
            started = time.perf_counter()
            await steady.send(json.dumps({"type": "ping", "ref": n}))
            while json.loads(await steady.recv()).get("ref") != n:
                pass
            pings.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(SAMPLE_EVERY)
    return handshakes, pings


async def flood(url, cookies, seconds, pace):
    """
    Each cookie's socket resumes from 0-0 over and over (a new socket each time: a socket
    replays once), all of them at once every `pace` seconds, or as fast as they can with pace 0;
    (replays answered, refusals, answer times in ms).
    """
    from websockets.asyncio.client import connect

    answered, refused, times = 0, 0, []
    began = time.monotonic()

    async def one(cookie):
        nonlocal answered, refused
        rounds = 0
        while time.monotonic() - began < seconds:
            async with connect(url, additional_headers={"Cookie": cookie, "Origin": ORIGIN}, open_timeout=30) as socket:
                await socket.recv()  # welcome
                started = time.perf_counter()
                await socket.send(json.dumps({"type": "resume", "cursor": "0-0"}))
                await socket.send(json.dumps({"type": "ping", "ref": "done"}))
                while (frame := json.loads(await socket.recv()))["type"] != "pong":
                    refused += frame.get("code") == "rate_limited"
                answered += 1
                times.append((time.perf_counter() - started) * 1000)
            rounds += 1
            await asyncio.sleep(max(0.0, began + rounds * pace - time.monotonic()))

    await asyncio.gather(*(one(cookie) for cookie in cookies))
    return answered, refused, times


def flood_process(url, cookies, seconds, pace):
    """The flood in a process of its own, so that the bystander's measurements are not its victims."""
    return subprocess.Popen(
        [sys.executable, __file__, "--flood", url, str(seconds), str(pace), *cookies], stdout=subprocess.PIPE, text=True
    )


def summary(label, handshakes, pings):
    row = {
        "handshake_p50": statistics.median(handshakes),
        "handshake_p90": percentile(handshakes, 0.9),
        "ping_p50": statistics.median(pings),
        "ping_p90": percentile(pings, 0.9),
        "samples": len(pings),
    }
    log(
        f"  {label:<7} handshake p50 {row['handshake_p50']:6.2f} ms, p90 {row['handshake_p90']:6.2f} ms; "
        f"ping p50 {row['ping_p50']:5.2f} ms, p90 {row['ping_p90']:5.2f} ms ({row['samples']} samples)"
    )
    return row


def flood_phase(relay, url, cookie, cookies, seconds, pace, idle):
    """The bystander's numbers while the hostile sockets resume, and the ratios to idle."""
    flooding = flood_process(url, cookies, seconds + 2, pace)
    time.sleep(1.0)  # the flood under way
    cpu = relay.server.cpu()
    label = f"{len(cookies)} at once every {pace:g} s" if pace else "as fast as they can"
    under = summary("paced" if pace else "hammer", *asyncio.run(bystander(url, cookie, seconds)))
    relay_cpu = (relay.server.cpu() - cpu) / seconds
    answered, refused, times = json.loads(flooding.communicate(timeout=seconds + 120)[0])
    under.update(
        replays=answered,
        rate_limited=refused,
        replay_answer_p50_ms=statistics.median(times) if times else None,
        relay_cpu=relay_cpu,
        handshake_ratio=under["handshake_p50"] / idle["handshake_p50"],
        ping_ratio=under["ping_p50"] / idle["ping_p50"],
    )
    log(
        f"    hostile, {label}: {answered:,} resumes answered ({refused:,} refused with rate_limited), answer p50 "
        f"{under['replay_answer_p50_ms'] or float('nan'):.0f} ms; relay CPU {relay_cpu:.0%}; bystander / idle: handshake "
        f"{under['handshake_ratio']:.2f}×, ping {under['ping_ratio']:.2f}× (target ≤ 2×: "
        f"{'PASS' if max(under['handshake_ratio'], under['ping_ratio']) <= 2 else 'FAIL'})"
    )
    return under


def run(args):
    harness.raise_file_limit()
    world = World(keep=args.keep)
    relay = None
    try:
        world.setup_django()
        world.create_users(args.hostile + 1 + 50)
        log(f"== replay flood: {args.hostile} hostile sockets resuming from 0-0, {args.events:,} events of history")
        build_history(world, args.events, args.hostile)
        import systems

        relay = systems.Ours(world)
        relay.start()
        url, cookie = relay.url, world.cookies[args.hostile]
        result = {"hostile": args.hostile, "events": args.events, "machine": harness.machine_facts()}
        result["idle"] = summary("idle", *asyncio.run(bystander(url, cookie, IDLE_SECONDS)))
        for mode, pace in (("paced", 1.0), ("hammer", 0.0)):
            result[mode] = flood_phase(relay, url, cookie, world.cookies[: args.hostile], args.seconds, pace, result["idle"])
            time.sleep(2.0)  # the rate limits' buckets refill
        result["after"] = summary("after", *asyncio.run(bystander(url, cookie, IDLE_SECONDS / 2)))
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"replay-flood-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(result, indent=2))
        log(f"  written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        return result
    finally:
        if relay is not None:
            relay.server.stop()
        world.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--flood":
        url, seconds, pace, cookies = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
        print(json.dumps(asyncio.run(flood(url, cookies, seconds, pace))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=14_000, help="events of history (the stream keeps 10,000)")
    parser.add_argument("--hostile", type=int, default=20, help="hostile users, one socket each")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the flood is measured")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
