"""
Cursors: where a client is in the sequence of published events.

A cursor is the ID of the event's entry in the Redis stream ("<milliseconds>-<sequence>"), which
Redis assigns in publication order. Events are published after their transaction commits, so a
transaction that commits late simply gets a later cursor: nothing that commits is ever placed
behind a cursor a client already holds. The same ID, as one integer (a "position"), is stored on
the Event row, so events stay findable by cursor after Redis has trimmed or lost them.

Clients treat cursors as opaque strings.
"""

import re
from datetime import datetime, timezone

CURSOR_PATTERN = re.compile(r"([0-9]{1,15})-([0-9]{1,6})")  # ASCII digits only, whole string
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SEQUENCES_PER_MS = 1_000_000  # Redis would need a million XADDs in one millisecond to overflow it


class BadCursor(ValueError):
    pass


def position(cursor):
    """The integer position of a cursor string; BadCursor if it is not one."""
    match = CURSOR_PATTERN.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise BadCursor(f"{cursor!r} is not a cursor: send back one the server gave you.")
    milliseconds, sequence = map(int, match.groups())
    return milliseconds * SEQUENCES_PER_MS + sequence


def cursor(position):
    milliseconds, sequence = divmod(position, SEQUENCES_PER_MS)
    return f"{milliseconds}-{sequence}"


def milliseconds(cursor_or_position):
    """When the event at that cursor was published (Unix time, milliseconds)."""
    if isinstance(cursor_or_position, str):
        cursor_or_position = position(cursor_or_position)
    return cursor_or_position // SEQUENCES_PER_MS


def epoch_us(moment):
    """Microseconds since the epoch of a datetime (a naive one is taken as local time, as Django does with USE_TZ off)."""
    delta = (moment if moment.tzinfo else moment.astimezone()) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
