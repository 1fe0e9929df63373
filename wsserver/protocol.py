"""
The relay's wire protocol without I/O: client frames in, commands out; server frames built.

Nothing here touches a socket, Redis or the database, so every rule of PROTOCOL.md about what a
client may send is checked by plain function calls (tests/test_protocol.py). parse() either
returns a command or raises ProtocolError carrying the error code, a message a developer can
act on, and the `ref` to answer with.
"""

import json
import math
from dataclasses import dataclass

from notifications.presence import STATES as PRESENCE_STATES

MAX_REF_LENGTH = 64

# Close codes (PROTOCOL.md).
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
AUTH_FAILED = 4001
SESSION_ENDED = 4003


class ProtocolError(Exception):
    def __init__(self, code, message, ref=None):
        super().__init__(message)
        self.code = code
        self.ref = ref


@dataclass(frozen=True)
class Auth:
    token: str
    ref: object = None


@dataclass(frozen=True)
class Subscribe:
    topics: tuple
    ref: object = None


@dataclass(frozen=True)
class Unsubscribe:
    topics: tuple
    ref: object = None


@dataclass(frozen=True)
class Resume:
    cursor: str
    ref: object = None


@dataclass(frozen=True)
class Presence:
    topic: str
    state: str | None  # "viewing", "editing", or None: gone
    ref: object = None


@dataclass(frozen=True)
class Ping:
    ref: object = None


def parse(frame, max_topics):
    """The command a client frame (str, or bytes for a binary frame) asks for."""
    if not isinstance(frame, str):
        raise ProtocolError("bad_request", "Frames are JSON text; binary frames are not accepted.")
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise ProtocolError("bad_request", "A frame must be a JSON object; this is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "A frame must be a JSON object with a 'type'.")
    ref = _ref(data.get("ref"))
    kind = data.get("type")
    if kind == "subscribe":
        return Subscribe(_topics(data, ref, max_topics), ref)
    if kind == "unsubscribe":
        return Unsubscribe(_topics(data, ref, max_topics), ref)
    if kind == "ping":
        return Ping(ref)
    if kind == "auth":
        return Auth(_string(data, "token", ref), ref)
    if kind == "resume":
        return Resume(_string(data, "cursor", ref), ref)
    if kind == "presence":
        state = data.get("state")
        if state is not None and state not in PRESENCE_STATES:
            raise ProtocolError("bad_request", f"'presence' needs 'state': one of {', '.join(PRESENCE_STATES)}, or null to leave.", ref)
        return Presence(_string(data, "topic", ref), state, ref)
    raise ProtocolError(
        "bad_request",
        f"Unknown type {kind!r}: expected auth, subscribe, unsubscribe, resume, presence or ping.",
        ref,
    )


def _ref(ref):
    """A client's `ref` is echoed back: accept a number or a short string, ignore anything else."""
    if isinstance(ref, bool) or not isinstance(ref, (int, float, str)):
        return None
    if isinstance(ref, float) and not math.isfinite(ref):
        return None  # NaN and Infinity would make the answer invalid JSON for browsers
    if isinstance(ref, str) and len(ref) > MAX_REF_LENGTH:
        return None
    return ref


def _string(data, field, ref):
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise ProtocolError("bad_request", f"'{data['type']}' needs '{field}', a non-empty string.", ref)
    return value


def _topics(data, ref, max_topics):
    topics = data.get("topics")
    if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
        raise ProtocolError("bad_request", f"'{data['type']}' needs 'topics', a non-empty list of strings.", ref)
    unique = tuple(dict.fromkeys(topics))
    if len(unique) > max_topics:
        raise ProtocolError("too_many_topics", f"At most {max_topics} topics per connection.", ref)
    return unique


# ASCII-escaped: a client may send strings with lone surrogates (JSON allows "\\ud800"), which
# refs and topic names echo back, and which UTF-8 cannot encode. default=str: user ids of custom
# user models may be UUIDs. One encoder for every frame: json.dumps() builds one a call when given
# options, twice for each event (its topic and cursor).
ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str)


def dumps(message):
    """JSON text for a control frame (ENCODER)."""
    return ENCODER.encode(message)


def _with_ref(message, ref):
    if ref is not None:
        message["ref"] = ref
    return dumps(message)


def welcome(user_id, username, topics, cursor):
    return dumps(
        {"type": "welcome", "user": {"id": user_id, "username": username}, "topics": list(topics), "cursor": cursor}
    )


def event(topic, cursor, event_json, muted=False):
    """
    An event frame around `event_json`, the event already serialized once by the publisher;
    `"muted":true` for a user who muted it (notifications.preferences: listed, never toasted).
    """
    muted = ',"muted":true' if muted else ""
    return f'{{"type":"event","topic":{dumps(topic)},"cursor":{dumps(cursor)},"event":{event_json}{muted}}}'


def subscribed(topics, ref=None):
    return _with_ref({"type": "subscribed", "topics": list(topics)}, ref)


def unsubscribed(topics, reason, ref=None):
    return _with_ref({"type": "unsubscribed", "topics": list(topics), "reason": reason}, ref)


def error(code, message, ref=None):
    return _with_ref({"type": "error", "code": code, "message": message}, ref)


def announced(topic, state, ref=None):
    return _with_ref({"type": "announced", "topic": topic, "state": state}, ref)


def pong(ref=None):
    return _with_ref({"type": "pong"}, ref)


def resync():
    return dumps({"type": "resync"})
