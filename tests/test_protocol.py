"""wsserver/protocol.py: client frames in, commands out, server frames built. No I/O."""

import json

import pytest

from wsserver import protocol
from wsserver.protocol import (
    Auth,
    Ping,
    ProtocolError,
    Resume,
    Subscribe,
    Unsubscribe,
    parse,
)

MAX = 5


def strict_loads(text):
    """json.loads that refuses NaN/Infinity, which are not JSON (RFC 8259) and break browsers' JSON.parse."""

    def refuse(constant):
        raise ValueError(f"{constant} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def is_strict_json(text):
    try:
        strict_loads(text)
    except ValueError:
        return False
    return True


def parse_error(frame, max_topics=MAX):
    with pytest.raises(ProtocolError) as info:
        parse(frame, max_topics)
    return info.value


# Commands ------------------------------------------------------------------------------------


def test_subscribe():
    assert parse('{"type": "subscribe", "topics": ["inbox", "model:auth.user"], "ref": 1}', MAX) == Subscribe(
        ("inbox", "model:auth.user"), 1
    )


def test_subscribe_deduplicates_topics_in_order():
    command = parse(json.dumps({"type": "subscribe", "topics": ["b", "a", "b", "a", "c"]}), MAX)
    assert command.topics == ("b", "a", "c")
    assert command.ref is None


def test_unsubscribe():
    assert parse('{"type": "unsubscribe", "topics": ["model:*"], "ref": "x"}', MAX) == Unsubscribe(("model:*",), "x")


def test_auth():
    assert parse('{"type": "auth", "token": "abc.def"}', MAX) == Auth("abc.def")


def test_resume():
    assert parse('{"type": "resume", "cursor": "1700000000000-0", "ref": 2}', MAX) == Resume("1700000000000-0", 2)


def test_ping():
    assert parse('{"type": "ping", "ref": 3}', MAX) == Ping(3)
    assert parse('{"type": "ping"}', MAX) == Ping(None)


def test_unknown_fields_are_ignored():
    assert parse('{"type": "ping", "ref": 1, "extra": {"nested": [1, 2]}, "x": null}', MAX) == Ping(1)


# Malformed frames ----------------------------------------------------------------------------


@pytest.mark.parametrize("frame", ["", "not json", "{", '{"type": "ping"', "{'type': 'ping'}"])
def test_not_json(frame):
    error = parse_error(frame)
    assert error.code == "bad_request"
    assert error.ref is None
    assert "JSON" in str(error)


@pytest.mark.parametrize("frame", [b'{"type": "ping"}', b"", bytearray(b'{"type": "ping"}')])
def test_binary_frames_are_refused(frame):
    error = parse_error(frame)
    assert error.code == "bad_request"
    assert "binary" in str(error)


@pytest.mark.parametrize("frame", ["[]", '["ping"]', "1", '"ping"', "null", "true"])
def test_not_an_object(frame):
    error = parse_error(frame)
    assert error.code == "bad_request"
    assert error.ref is None


@pytest.mark.parametrize("kind", ["pong", "welcome", "SUBSCRIBE", "", None, 1, ["ping"]])
def test_unknown_type(kind):
    error = parse_error(json.dumps({"type": kind, "ref": 9}))
    assert error.code == "bad_request"
    assert error.ref == 9
    assert "Unknown type" in str(error)


def test_missing_type():
    error = parse_error('{"ref": 4}')
    assert error.code == "bad_request"
    assert error.ref == 4


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe"},
        {"type": "subscribe", "topics": "inbox"},
        {"type": "subscribe", "topics": None},
        {"type": "subscribe", "topics": {"inbox": True}},
        {"type": "subscribe", "topics": ["inbox", 1]},
        {"type": "subscribe", "topics": [["inbox"]]},
        {"type": "unsubscribe", "topics": "model:*"},
        {"type": "unsubscribe", "topics": [None]},
        {"type": "auth"},
        {"type": "auth", "token": 123},
        {"type": "auth", "token": ["t"]},
        {"type": "auth", "token": ""},
        {"type": "resume"},
        {"type": "resume", "cursor": 17},
        {"type": "resume", "cursor": ""},
    ],
)
def test_wrong_field_types(message):
    message["ref"] = "r1"
    error = parse_error(json.dumps(message))
    assert error.code == "bad_request"
    assert error.ref == "r1"


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
def test_empty_topics(kind):
    error = parse_error(json.dumps({"type": kind, "topics": [], "ref": 1}))
    assert error.code == "bad_request"
    assert error.ref == 1


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
def test_too_many_topics(kind):
    topics = [f"model:app.m{i}" for i in range(MAX + 1)]
    error = parse_error(json.dumps({"type": kind, "topics": topics, "ref": 7}))
    assert error.code == "too_many_topics"
    assert error.ref == 7
    assert str(MAX) in str(error)


def test_topic_limit_counts_distinct_topics():
    topics = [f"model:app.m{i}" for i in range(MAX)]
    assert len(parse(json.dumps({"type": "subscribe", "topics": topics + topics}), MAX).topics) == MAX


# ref ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", [0, 1, -5, 2**53, 1.5, "", "abc", "x" * protocol.MAX_REF_LENGTH])
def test_ref_is_echoed(ref):
    assert parse(json.dumps({"type": "ping", "ref": ref}), MAX).ref == ref
    assert parse_error(json.dumps({"type": "nope", "ref": ref})).ref == ref


@pytest.mark.parametrize("ref", [True, False, None, [1], {"a": 1}, "x" * (protocol.MAX_REF_LENGTH + 1)])
def test_unusable_ref_is_dropped(ref):
    assert parse(json.dumps({"type": "ping", "ref": ref}), MAX).ref is None
    assert parse_error(json.dumps({"type": "nope", "ref": ref})).ref is None


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_ref_does_not_make_invalid_json(constant):
    """Python's json accepts NaN/Infinity; echoing them back would send a frame that is not JSON."""
    command = parse(f'{{"type": "ping", "ref": {constant}}}', MAX)
    pong = protocol.pong(command.ref)
    assert is_strict_json(pong), f"The relay would answer {pong!r}, which is not JSON."
    error = parse_error(f'{{"type": "nope", "ref": {constant}}}')
    frame = protocol.error(error.code, str(error), error.ref)
    assert is_strict_json(frame), f"The relay would answer {frame!r}, which is not JSON."


# Server frames --------------------------------------------------------------------------------


def test_event_frame_wraps_event_json_verbatim():
    event_json = json.dumps(
        {"id": 5, "kind": "notification", "title": "Caf\u00e9 \u201cquoted\u201d \"x\"", "data": {"n": [1, 2.5, None]}},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    frame = protocol.event('model:auth.user', "1700000000000-3", event_json)
    parsed = strict_loads(frame)
    assert parsed == {
        "type": "event",
        "topic": "model:auth.user",
        "cursor": "1700000000000-3",
        "event": json.loads(event_json),
    }
    assert event_json in frame  # not re-serialized


def test_event_frame_escapes_topic_and_cursor():
    frame = protocol.event('we"ird\\topic', 'c"1', '{"id":1}')
    parsed = strict_loads(frame)
    assert parsed["topic"] == 'we"ird\\topic'
    assert parsed["cursor"] == 'c"1'


def test_welcome():
    assert strict_loads(protocol.welcome(7, "alice", ["inbox"], "0-0")) == {
        "type": "welcome",
        "user": {"id": 7, "username": "alice"},
        "topics": ["inbox"],
        "cursor": "0-0",
    }


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (protocol.subscribed(("a", "b"), 1), {"type": "subscribed", "topics": ["a", "b"], "ref": 1}),
        (protocol.subscribed(["a"]), {"type": "subscribed", "topics": ["a"]}),
        (
            protocol.unsubscribed(["a"], "requested", "r"),
            {"type": "unsubscribed", "topics": ["a"], "reason": "requested", "ref": "r"},
        ),
        (
            protocol.unsubscribed(["a"], "permission_revoked"),
            {"type": "unsubscribed", "topics": ["a"], "reason": "permission_revoked"},
        ),
        (protocol.error("forbidden", "No.", 3), {"type": "error", "code": "forbidden", "message": "No.", "ref": 3}),
        (protocol.error("bad_request", "Bad."), {"type": "error", "code": "bad_request", "message": "Bad."}),
        (protocol.pong(0), {"type": "pong", "ref": 0}),
        (protocol.pong(""), {"type": "pong", "ref": ""}),
        (protocol.pong(), {"type": "pong"}),
        (protocol.resync(), {"type": "resync"}),
    ],
)
def test_server_frames(frame, expected):
    assert isinstance(frame, str)
    assert strict_loads(frame) == expected


def test_frames_keep_non_ascii_text_and_are_ascii_on_the_wire():
    """Text survives the round trip; escaped, so even a lone surrogate a client sent encodes."""
    frame = protocol.error("bad_request", "Caf\u00e9 \ud800", ref="\ud800")
    assert frame.isascii()
    frame.encode("utf-8")
    assert json.loads(frame)["message"] == "Caf\u00e9 \ud800"


def test_deeply_nested_json_is_a_bad_request():
    """json.loads raises RecursionError past its nesting limit; that must not escape parse()."""
    with pytest.raises(protocol.ProtocolError) as excinfo:
        protocol.parse("[" * 100_000, MAX)
    assert excinfo.value.code == "bad_request"
