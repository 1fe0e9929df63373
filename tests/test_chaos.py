"""
The chaos test in the suite: `bench/chaos.py --short` (5,000 events from 2 publishing processes to
50 clients over 2 relays, while relays are SIGKILLed and SIGTERMed and Redis loses its data) must
report no event lost, duplicated, out of order (by cursor, or against its publisher's commit
order) or sent to the wrong user, and no resync.

It runs as a subprocess that builds its own Redis and database in a temporary directory: nothing
here touches the test session's. Deselect it with `-m "not chaos"`.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
TIMEOUT = 150  # --short takes about 40 s here
COUNTS = ("lost", "duplicated", "out-of-order", "out-of-commit-order", "unauthorized", "resyncs")
SUMMARY = re.compile("^" + " · ".join(rf"{name} (\d+)" for name in COUNTS) + "$", re.MULTILINE)


def run_chaos(*args):
    """(exit code, output) of bench/chaos.py; on timeout it gets SIGTERM, so it stops what it started."""
    # Its own Redis and database: not the ones this test session points the environment at.
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    process = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "bench" / "chaos.py"), *args],
        cwd=BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"bench/chaos.py {' '.join(args)} did not finish within {TIMEOUT} s:\n{output}")
    return process.returncode, output


@pytest.mark.chaos
def test_no_event_is_lost_duplicated_reordered_or_misdelivered_while_relays_and_redis_die():
    code, output = run_chaos("--short")
    summary = SUMMARY.search(output)
    assert summary is not None, output
    counts = dict(zip(COUNTS, map(int, summary.groups())))
    assert counts == dict.fromkeys(counts, 0), output
    assert code == 0, output
