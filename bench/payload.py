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
import random
import re

SIZE = 200  # bytes of the payload, padded to this (with the longest seq and ts of a run)
ID_BASE = 1_000_000_000  # "id" = ID_BASE + seq: never an id of a real stored event

# What the load client looks for in every frame, whatever the envelope around it: the sequence
# number and clock in an event's data (`"seq":N,"ts":N`), or in its link's query (`?seq=N&ts=N`:
# announce() takes no data). It starts with a literal, which keeps the search as fast as one for
# the first form alone (0.3 µs a frame).
MARKER = re.compile(rb'seq["=:]+(\d+)[",&]+ts["=:]+(\d+)')
# Words for the title and body of payload(prose=True).
WORDS = [
    "order", "invoice", "customer", "shipped", "delivered", "cancelled", "changed", "updated",
    "price", "from", "to", "status", "for", "the", "of", "and", "was", "by", "alice", "bob",
    "carol", "dave", "erin", "frank", "grace", "address", "email", "note", "reply", "ticket",
    "comment",
]


def sentence(draw, length):
    """About `length` characters of words and numbers, drawn with the random.Random `draw`."""
    words = []
    while sum(map(len, words)) + len(words) < length:
        words.append(str(draw.randrange(1, 100_000)) if draw.random() < 0.2 else draw.choice(WORDS))
    return " ".join(words)


def payload(seq, ts_ns, size=SIZE, prose=False):
    """
    The event JSON (str) for sequence number `seq`, sent at `ts_ns`, padded to `size` bytes; or,
    with `prose`, ≈400 bytes whose title and body are words and numbers drawn afresh for each
    seq: events differ more than seq and ts do, and permessage-deflate is measured on that.
    """
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
    if prose:
        draw = random.Random(seq)
        fields["title"], fields["body"] = sentence(draw, 40), sentence(draw, 160)
        return json.dumps(fields, separators=(",", ":"))
    text = json.dumps(fields, separators=(",", ":"))
    fields["body"] = "x" * max(0, size - len(text))
    return json.dumps(fields, separators=(",", ":"))


def parse_marker(frame):
    """(seq, ts_ns) from a frame (bytes or str), or None: for tests and the websockets backend."""
    if isinstance(frame, str):
        frame = frame.encode()
    match = MARKER.search(frame)
    return (int(match[1]), int(match[2])) if match else None
