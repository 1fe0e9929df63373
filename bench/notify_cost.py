"""
What notify() and announce() add to a request (issue point 4): time and queries.

    .venv/bin/python bench/notify_cost.py [--runs 200] [--users 10000] [--keep]

A logged-in POST through Django's test client to bench/views.py, whose view calls notify() of
the requesting user, of a group (1, 100 or 10,000 members), of a user queryset of the same
sizes, announce() to everyone, or nothing (the baseline). Each request stores the event,
commits, and publishes it to Redis (the same Lua script, on a stream of its own here, so no
relay sees it). Requests of each kind alternate with baseline requests; the added time is the
median of the kind's minus the median of the baseline's. Queries are counted with
CaptureQueriesContext, over the whole request, minus the baseline's.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import World, log  # noqa: E402

STREAM = "bench:notify-cost"


def cases(world):
    """(label, audience size, mode) for the view."""
    big = len(world.users)
    rows = [("nothing (baseline)", 0, "none"), ("notify(user)", 1, "user")]
    for size in sorted(world.groups):
        rows.append((f"notify(group of {size:,})", size, f"group-{world.groups[size].pk}"))
    for size in sorted(world.groups):
        rows.append((f"notify(queryset of {size:,} users)", size, f"users-{world.groups[size].pk}"))
    rows.append((f"announce() to all {big:,}", big, "announce"))
    return rows


def run(world, runs=200):
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext
    from django_redis import get_redis_connection

    log(f"== notify() in a request ({runs} runs each)")
    client = Client(SERVER_NAME="localhost")
    client.force_login(world.users[0])
    results = []
    with override_settings(NOTIFICATIONS_STREAM_KEY=STREAM):
        redis = get_redis_connection("default")

        def request(mode):
            started = time.perf_counter()
            response = client.post(f"/bench/notify/{mode}/")
            took = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"/bench/notify/{mode}/ answered {response.status_code}: {response.content[:300]}")
            return took

        def queries(mode):
            with CaptureQueriesContext(connection) as captured:
                request(mode)
            return len(captured.captured_queries), [q["sql"][:120] for q in captured.captured_queries]

        baseline_queries, _ = queries("none")
        for label, size, mode in cases(world):
            for _ in range(10):  # warm up: connections, caches, the Lua script
                request(mode)
            mine, base = [], []
            # The 10,000-user queryset inserts 10,000 recipient rows a request: fewer runs.
            count = runs if not (mode.startswith("users-") and size > 1000) else max(20, runs // 4)
            for _ in range(count):
                base.append(request("none"))
                mine.append(request(mode))
            count_queries, sql = queries(mode)
            row = {
                "label": label,
                "audience": size,
                "mode": mode,
                "runs": count,
                "median_ms": statistics.median(mine) * 1000,
                "baseline_ms": statistics.median(base) * 1000,
                "added_ms": (statistics.median(mine) - statistics.median(base)) * 1000,
                "queries": count_queries - baseline_queries,
                "sql": sql[baseline_queries:] if mode != "none" else [],
            }
            results.append(row)
            log(f"  {label:<34} {row['median_ms']:7.2f} ms (baseline {row['baseline_ms']:.2f}): +{row['added_ms']:.2f} ms, "
                f"{row['queries']} queries")
        redis.delete(STREAM)
        for key in redis.scan_iter(f"{STREAM}:published:*", count=1000):
            redis.delete(key)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    world = World(keep=args.keep)
    try:
        world.setup_django()
        world.create_users(args.users)
        for row in run(world, args.runs):
            print(f"{row['label']:<34} +{row['added_ms']:.2f} ms  {row['queries']} queries  {row['sql']}")
    finally:
        world.close()


if __name__ == "__main__":
    harness.raise_file_limit()
    main()
