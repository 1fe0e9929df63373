"""
The benchmark's message: the same ≈200-byte JSON event for every system under test.

It has the fields of this project's `event` frames (docs/protocol.md) and carries, in `data`,
a sequence number and the sender's clock (time.time_ns()), from which the load client counts
deliveries and duplicates and measures latency. Each system wraps it in its own envelope: this
project's relay in `{"type": "event", "topic": ..., "cursor": ..., "event": <payload>}`, the bare
relay and Channels send it as it is.

Standard library only: the Channels peer's publisher imports it from its own virtualenv.
"""

import json
import re

SIZE = 200  # bytes of the payload, padded to this (with the longest seq and ts of a run)
ID_BASE = 1_000_000_000  # "id" = ID_BASE + seq: never an id of a real stored event

# What the load client looks for in every frame, whatever the envelope around it: the sequence
# number and clock in an event's data (`"seq":N,"ts":N`), or in its link's query (`?seq=N&ts=N`:
# announce() takes no data). It starts with a literal, which keeps the search as fast as one for
# the first form alone (0.3 µs a frame).
MARKER = re.compile(rb'seq["=:]+(\d+)[",&]+ts["=:]+(\d+)')


def payload(seq, ts_ns, size=SIZE):
    """The event JSON (str) for sequence number `seq`, sent at `ts_ns`, padded to `size` bytes."""
    fields = {
        "id": ID_BASE + seq,
        "kind": "notification",
        "title": f"Benchmark event {seq}",
        "body": "",
        "url": "/bench/",
        "actor": None,
        "target": None,
        "created_at": "2026-11-21T10:00:00.000Z",
        "data": {"seq": seq, "ts": ts_ns},
    }
    text = json.dumps(fields, separators=(",", ":"))
    fields["body"] = "x" * max(0, size - len(text))
    return json.dumps(fields, separators=(",", ":"))


def parse_marker(frame):
    """(seq, ts_ns) from a frame (bytes or str), or None: for tests and the websockets backend."""
    if isinstance(frame, str):
        frame = frame.encode()
    match = MARKER.search(frame)
    return (int(match[1]), int(match[2])) if match else None
