"""
Where one stream stops scaling: one Redis, one publisher, 1 to 32 relay readers on one stream.

    .venv/bin/python bench/stream_fanout.py [--readers 1,2,4,8,16,32] [--seconds 5] [--rate 0]

Every relay reads the whole stream (each event's routes are decided by the reader: docs/scaling.md),
so each added relay costs Redis one more copy of every entry. This measures what each reader
gets as their number grows: a publisher adds entries through the same Lua script as notify()
(publishing.PUBLISH, 100 events a call as the outbox publishes them, ≈200-byte events with their routes), as fast as it
can (or at --rate entries/s), while N reader processes XREAD them as the relay's reader does
(BLOCK, COUNT 500) and decode each entry as it does (publishing.decode_message), but deliver
nothing. Reported per N: entries/s published, entries/s each reader got (slowest, median), their
sum (what Redis served), the readers' lag behind the publisher (p99 of entry age at arrival), and
the CPU of Redis and of the whole machine (2 cores here: the readers, the publisher and Redis
share them, so past a few readers the machine, not Redis, is what runs out; Redis's own CPU
tells which).
"""

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import CpuWatch, World, cpu_seconds, log  # noqa: E402
from payload import payload  # noqa: E402

STREAM = "bench:fanout"
WARM_UP = 1.0  # seconds of publishing before the measured window
PER_CALL = 100  # events a publishing call adds
BLOCK_MS = 5_000
BATCH = 500  # the relay reader's COUNT (wsserver/bus.py)


def read(redis_url, ready, results, window):
    """A reader process: count the entries that arrive inside `window` (wall clock) and their age."""
    import django
    import redis.asyncio as aioredis

    sys.path.insert(0, str(harness.BASE_DIR))
    django.setup()
    from notifications.publishing import decode_message

    async def main():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=BLOCK_MS / 1000 + 10)
        after = "$"
        ready.put(True)
        start, end = window.get()
        received, ages = 0, []
        while True:
            response = await client.xread({STREAM: after}, count=BATCH, block=BLOCK_MS)
            now = time.time()
            if not response:
                break  # the publisher stopped a while ago and everything was read
            for entry_id, fields in response[0][1]:
                decode_message(fields)
                after = entry_id
                if start <= now < end:
                    received += 1
                    if received % 50 == 0:
                        ages.append(now * 1000 - int(entry_id.split("-")[0]))
            if now >= end + 2:
                break
        await client.aclose()
        results.put((received, ages))

    asyncio.run(main())


def publish(redis_url, window, rate):
    """Publish until the measured `window` (wall clock) ends; how many entries were added inside it."""
    import redis
    from django.test import override_settings

    from notifications.publishing import PUBLISH, publish_arguments

    client = redis.Redis.from_url(redis_url)
    script = client.register_script(PUBLISH)
    routes = '["inbox:group:1","model:auth.user"]'
    started = time.time()
    seq = added = 0
    while time.time() < window[1]:
        entries = [(seq + n, payload(seq + n, time.time_ns()), routes, int(time.time() * 1e6)) for n in range(1, PER_CALL + 1)]
        seq += PER_CALL
        with override_settings(NOTIFICATIONS_STREAM_KEY=STREAM, NOTIFICATIONS_STREAM_MAXLEN=100_000):
            results = script(*publish_arguments(entries, catching_up=True))
        if window[0] <= time.time() < window[1]:
            added += sum(not isinstance(result, list) for result in results)  # a list: published before
        if rate:
            time.sleep(max(0.0, seq / rate - (time.time() - started)))
    client.close()
    return added


def measure(world, readers, seconds, rate):
    context = multiprocessing.get_context("spawn")
    ready, results, windows = context.Queue(), context.Queue(), context.Queue()
    processes = [context.Process(target=read, args=(world.redis_url, ready, results, windows)) for _ in range(readers)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)
    redis_pids = [world.redis_process.pid]
    redis_cpu = cpu_seconds(redis_pids)
    started = time.time()
    window = (started + WARM_UP, started + WARM_UP + seconds)
    for _ in processes:
        windows.put(window)
    watch = CpuWatch()
    added = publish(world.redis_url, window, rate)
    machine = watch.stop()
    redis_share = (cpu_seconds(redis_pids) - redis_cpu) / (time.time() - started)
    got = [results.get(timeout=BLOCK_MS / 1000 + 30) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    counts = sorted(count / seconds for count, _ in got)
    ages = sorted(age for _, each in got for age in each)
    return {
        "readers": readers,
        "published": added / seconds,
        "slowest": counts[0],
        "median": statistics.median(counts),
        "served": sum(counts),
        "lag_p99": ages[int(len(ages) * 0.99)] if ages else float("nan"),
        "redis_cpu": redis_share,
        "machine": machine["machine"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", default="1,2,4,8,16,32", help="reader counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per reader count")
    parser.add_argument("--rate", type=float, default=0, help="entries/s to publish (0: as fast as possible)")
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    harness.raise_file_limit()
    world = World(keep=options.keep)
    try:
        world.setup_django()
        rows = []
        for readers in [int(each) for each in options.readers.split(",")]:
            empty_redis(world)
            row = measure(world, readers, options.seconds, options.rate)
            log(
                f"{readers:>2} readers: published {row['published']:,.0f}/s, each got {row['slowest']:,.0f}–"
                f"{row['median']:,.0f}/s, Redis served {row['served']:,.0f}/s, lag p99 {row['lag_p99']:,.0f} ms, "
                f"Redis CPU {row['redis_cpu']:.0%}, machine {row['machine']:.0%} of one core"
            )
            rows.append(row)
        print(table(rows, options))
    finally:
        world.close()


def empty_redis(world):
    """An empty Redis for each measurement (its own): the same costs whatever ran before."""
    import redis

    client = redis.Redis.from_url(world.redis_url)
    client.flushdb()
    client.close()


def table(rows, options):
    rate = f"{options.rate:,.0f} entries/s" if options.rate else "as fast as it can"
    lines = [
        f"One stream, one publisher ({rate}), N readers; {options.seconds:g} s windows.",
        "",
        "| readers | published entries/s | each reader got /s (slowest – median) | Redis served /s | lag p99 | Redis CPU | machine CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['readers']} | {row['published']:,.0f} | {row['slowest']:,.0f} – {row['median']:,.0f} | "
            f"{row['served']:,.0f} | {row['lag_p99']:,.0f} ms | {row['redis_cpu']:.0%} | {row['machine']:.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
