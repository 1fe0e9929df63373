"""
Fuzzing wsserver/protocol.py (hypothesis): whatever a client sends, parse() returns a
well-typed command or raises ProtocolError with a protocol error code, never anything else; and
every frame the relay builds (the answers to those commands included) is strict JSON that can
travel in a WebSocket text frame (UTF-8).

Pure functions, no I/O: a couple of hundred examples per property, a second or two each. One
test sends the frames that once broke a connection (a lone surrogate echoed back) to a real relay.
"""

import json
import math
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

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

from .factories import login, make_user

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ERROR_CODES = {"bad_request", "too_many_topics"}
COMMANDS = (Auth, Subscribe, Unsubscribe, Resume, Ping)
KNOWN_TYPES = ["auth", "subscribe", "unsubscribe", "resume", "ping"]


def strict_loads(text):
    """json.loads that refuses NaN and Infinity (not JSON: browsers' JSON.parse rejects them)."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def assert_sendable(frame):
    """A frame the relay can send: a str of strict JSON, encodable as a UTF-8 text frame."""
    assert isinstance(frame, str), frame
    try:
        frame.encode("utf-8")
    except UnicodeEncodeError as error:
        pytest.fail(f"A text frame must be UTF-8; this one cannot be encoded ({error}): {frame!r}")
    return strict_loads(frame)


# Strategies ------------------------------------------------------------------------------------

# Text with, now and then, lone surrogates: JSON's "\ud800" escape decodes to one in Python.
surrogates = st.integers(0xD800, 0xDFFF).map(chr)
any_text = st.one_of(
    st.text(max_size=40),
    st.text(st.one_of(st.characters(), surrogates), max_size=20),
    st.sampled_from(["", "inbox", "model:*", "model:auth.user", "object:auth.group:1", "x" * 64, "x" * 65]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
refs = st.one_of(
    st.integers(),
    st.floats(),
    st.text(max_size=70),
    any_text,
    json_values,
)
topic_lists = st.one_of(
    st.lists(any_text, max_size=8),
    st.lists(st.sampled_from(["inbox", "model:*", "model:auth.user", "a", "b"]), max_size=8),  # duplicates
    st.lists(st.text(max_size=3), min_size=90, max_size=120),  # around the topic limit
    json_values,
)


@st.composite
def messages(draw):
    """Dicts shaped like real client messages, with field types and values mutated."""
    near_misses = st.sampled_from(["SUBSCRIBE", "ping ", "pong", "", "welcome"])
    kind = draw(st.one_of(st.sampled_from(KNOWN_TYPES), near_misses, json_values))
    message = {"type": kind}
    if draw(st.booleans()):
        message["ref"] = draw(refs)
    if draw(st.booleans()):
        message["topics"] = draw(topic_lists)
    if draw(st.booleans()):
        message["token"] = draw(st.one_of(any_text, json_values))
    if draw(st.booleans()):
        message["cursor"] = draw(st.one_of(st.sampled_from(["1700000000000-0", "0-0", ""]), any_text, json_values))
    message.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3)))  # unknown fields
    if draw(st.integers(0, 9)) == 0:
        del message["type"]
    return message


def dumps_any(value):
    """JSON text as a sloppy client might send it: NaN/Infinity allowed, ASCII or not."""
    return json.dumps(value, allow_nan=True, ensure_ascii=False)


@st.composite
def mutated_json_text(draw):
    """Valid JSON text of a message, then cut, spliced or garbled."""
    text = dumps_any(draw(messages()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if operation == "insert":
            junk = draw(st.text(st.sampled_from('{}[]":,\\ u0123456789abcdefnNItrue-.e'), max_size=4))
            text = text[:at] + junk + text[at:]
        elif operation == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 4)) :]
        else:
            text = text[:at]
    return text


@st.composite
def nested(draw):
    """JSON nested around the parser's recursion limit (RecursionError must not escape)."""
    depth = draw(st.integers(1, 3000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"type":"ping","ref":', "}")]))
    return opener * depth + "1" + closer * draw(st.sampled_from([depth, 0, depth // 2]))


frames_text = st.one_of(
    st.text(),
    st.text(st.one_of(st.characters(), surrogates)),
    json_values.map(dumps_any),
    messages().map(dumps_any),
    messages().map(lambda m: json.dumps(m, allow_nan=True)),  # \uXXXX escapes, lone surrogates included
    mutated_json_text(),
    nested(),
)
max_topics = st.integers(min_value=1, max_value=150)


# The property of parse() -----------------------------------------------------------------------


def valid_ref(ref):
    if ref is None:
        return True
    if isinstance(ref, bool):
        return False
    if isinstance(ref, int):
        return True
    if isinstance(ref, float):
        return math.isfinite(ref)
    return isinstance(ref, str) and len(ref) <= protocol.MAX_REF_LENGTH


def parse_checked(frame, limit):
    """parse(), and the checks that hold for any input: well-typed command or protocol error."""
    try:
        command = parse(frame, limit)
    except ProtocolError as error:
        assert error.code in ERROR_CODES, error.code
        assert valid_ref(error.ref), error.ref
        assert isinstance(str(error), str) and str(error)
        return error
    except Exception as error:  # noqa: BLE001 - the property: nothing else escapes
        pytest.fail(f"parse({frame!r:.300}, {limit}) raised {type(error).__name__}: {error}")
    assert type(command) in COMMANDS, command
    assert valid_ref(command.ref), command.ref
    if isinstance(command, (Subscribe, Unsubscribe)):
        assert isinstance(command.topics, tuple)
        assert 1 <= len(command.topics) <= limit
        assert all(isinstance(topic, str) for topic in command.topics)
        assert len(set(command.topics)) == len(command.topics)
    if isinstance(command, Auth):
        assert isinstance(command.token, str) and command.token
    if isinstance(command, Resume):
        assert isinstance(command.cursor, str) and command.cursor
    return command


def answers(outcome):
    """The frames the relay answers a parsed frame with that echo client input (client.py)."""
    if isinstance(outcome, ProtocolError):
        return [protocol.error(outcome.code, str(outcome), outcome.ref)]
    if isinstance(outcome, Ping):
        return [protocol.pong(outcome.ref)]
    if isinstance(outcome, Subscribe):
        return [protocol.subscribed(outcome.topics, outcome.ref), protocol.error("forbidden", "No.", outcome.ref)]
    if isinstance(outcome, Unsubscribe):  # unsubscribed echoes the names as requested
        return [protocol.unsubscribed(outcome.topics, "requested", outcome.ref)]
    return [protocol.error("bad_request", "Already authenticated.", outcome.ref)]


@FUZZ
@given(frame=frames_text, limit=max_topics)
def test_parse_arbitrary_text(frame, limit):
    parse_checked(frame, limit)


@FUZZ
@given(
    frame=st.one_of(
        st.binary(),
        st.binary().map(bytearray),
        json_values.map(lambda value: dumps_any(value).encode("utf-8", "surrogatepass")),
    )
)
def test_binary_frames_are_always_a_bad_request(frame):
    outcome = parse_checked(frame, 100)
    assert isinstance(outcome, ProtocolError) and outcome.code == "bad_request"


def model(message, limit):
    """What parse() must make of a JSON object, decided independently: (class, fields) or error code."""
    ref = message.get("ref")
    ref = ref if valid_ref(ref) else None
    kind = message.get("type")
    if kind in ("subscribe", "unsubscribe"):
        topics = message.get("topics")
        if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
            return "bad_request", ref
        distinct = []
        for topic in topics:
            if topic not in distinct:
                distinct.append(topic)
        if len(distinct) > limit:
            return "too_many_topics", ref
        return (Subscribe if kind == "subscribe" else Unsubscribe)(tuple(distinct), ref), ref
    if kind in ("auth", "resume"):
        field = "token" if kind == "auth" else "cursor"
        value = message.get(field)
        if not isinstance(value, str) or value == "":
            return "bad_request", ref
        return (Auth if kind == "auth" else Resume)(value, ref), ref
    if kind == "ping":
        return Ping(ref), ref
    return "bad_request", ref


def same_ref(actual, expected):
    if expected is None:
        return actual is None
    return type(actual) is type(expected) and actual == expected


@FUZZ
@given(message=messages(), limit=max_topics, ascii_only=st.booleans())
def test_parse_message_shapes_against_a_model(message, limit, ascii_only):
    frame = json.dumps(message, allow_nan=True, ensure_ascii=ascii_only)
    # What the client really sent, after JSON (a NaN ref is NaN, 1e400 is inf, and so on).
    message = json.loads(frame)
    outcome = parse_checked(frame, limit)
    expected, expected_ref = model(message, limit)
    if isinstance(expected, str):
        assert isinstance(outcome, ProtocolError), f"{frame!r:.300} parsed as {outcome!r:.300}, expected {expected}"
        assert outcome.code == expected
    else:
        assert type(outcome) is type(expected), f"{frame!r:.300}: {outcome!r:.300}, expected {expected!r:.300}"
        for field in ("topics", "token", "cursor"):
            assert getattr(outcome, field, None) == getattr(expected, field, None)
    assert same_ref(outcome.ref, expected_ref), (outcome.ref, expected_ref)


@FUZZ
@given(value=json_values, limit=max_topics)
def test_parse_arbitrary_json_values(value, limit):
    outcome = parse_checked(dumps_any(value), limit)
    if not isinstance(value, dict):
        assert isinstance(outcome, ProtocolError) and outcome.code == "bad_request"
        assert outcome.ref is None


# Escaped lone surrogates where the relay echoes client input back: the ref, unsubscribe's names.
echoed_surrogates = st.builds(
    lambda kind, text, ref: json.dumps({"type": kind, "topics": [text], "ref": ref}),
    st.sampled_from(["ping", "unsubscribe", "subscribe", "auth", "nope"]),
    st.text(st.one_of(st.characters(), surrogates), min_size=1, max_size=4),
    st.one_of(st.integers(), st.text(st.one_of(st.characters(), surrogates), max_size=4)),
)


@FUZZ
@given(
    frame=st.one_of(messages().map(lambda m: json.dumps(m, allow_nan=True)), frames_text, echoed_surrogates),
    limit=max_topics,
)
@example(frame='{"type": "ping", "ref": "\\ud800"}', limit=100)
@example(frame='{"type": "unsubscribe", "topics": ["\\udfff"]}', limit=100)
def test_answers_to_any_frame_are_sendable_json(frame, limit):
    """
    Whatever the client sent, the frames that echo it (its `ref`, its topic names) are strict
    JSON and valid UTF-8, so the relay can send them. A `"\\ud800"` escape decodes to a lone
    surrogate, which no UTF-8 text frame can carry.
    """
    for answer in answers(parse_checked(frame, limit)):
        assert_sendable(answer)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "frame",
    ['{"type": "ping", "ref": "\\ud800"}', '{"type": "unsubscribe", "topics": ["\\udfff"], "ref": 1}'],
    ids=["ref", "unsubscribe"],
)
async def test_the_relay_answers_frames_that_echo_a_lone_surrogate(relay, ws_clients, frame):
    """The same over the wire: an answer, and the connection goes on (not a 1006 and a traceback)."""
    session = await sync_to_async(login)(await sync_to_async(make_user)("surrogate"))
    await sync_to_async(connections.close_all)()
    client, _ = await ws_clients.with_cookie(relay, session)
    await client.send(frame)
    try:
        answer = await client.recv()
        await client.send({"type": "ping", "ref": "control"})
        control = await client.expect("pong")
    except ConnectionClosed as closed:
        pytest.fail(f"The relay dropped the connection instead of answering {frame}: {closed!r}")
    assert answer["type"] in {"pong", "unsubscribed", "error"}, answer
    assert control["ref"] == "control"


# Server frame builders -------------------------------------------------------------------------


def ref_as_parse_passes_it(value):
    """
    The ref parse() would hand the relay for a client's `ref` of `value`, sent as a client can:
    a text frame is valid UTF-8 (websockets refuses others), so lone surrogates come escaped.
    """
    return parse(json.dumps({"type": "ping", "ref": value}, allow_nan=True, ensure_ascii=True), 1).ref


parsed_refs = st.one_of(st.none(), refs.map(ref_as_parse_passes_it))  # lone surrogates included
server_text = st.text(max_size=40)  # names and messages the server makes (from the database, canonical topics)
strict_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), server_text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(server_text, children, max_size=4)),
    max_leaves=15,
)


def with_ref(expected, ref):
    if ref is not None:
        expected["ref"] = ref
    return expected


@FUZZ
@given(
    user_id=st.one_of(st.integers(min_value=1), st.uuids(), server_text),
    username=server_text,
    topics=st.lists(server_text, max_size=5),
    cursor=server_text,
)
def test_welcome_frames(user_id, username, topics, cursor):
    frame = assert_sendable(protocol.welcome(user_id, username, topics, cursor))
    expected_id = str(user_id) if isinstance(user_id, uuid.UUID) else user_id
    assert frame == {"type": "welcome", "user": {"id": expected_id, "username": username}, "topics": topics, "cursor": cursor}


@FUZZ
@given(
    topics=st.lists(server_text, max_size=5),
    ref=parsed_refs,
    reason=st.sampled_from(["requested", "permission_revoked"]),
)
def test_subscribed_and_unsubscribed_frames(topics, ref, reason):
    expected = with_ref({"type": "subscribed", "topics": topics}, ref)
    assert assert_sendable(protocol.subscribed(tuple(topics), ref)) == expected
    assert assert_sendable(protocol.unsubscribed(topics, reason, ref)) == with_ref(
        {"type": "unsubscribed", "topics": topics, "reason": reason}, ref
    )


@FUZZ
@given(
    code=st.sampled_from(["forbidden", "bad_request", "unknown_topic", "rate_limited", "too_many_topics"]),
    message=server_text,
    ref=parsed_refs,
)
def test_error_frames(code, message, ref):
    expected = with_ref({"type": "error", "code": code, "message": message}, ref)
    assert assert_sendable(protocol.error(code, message, ref)) == expected


@FUZZ
@given(ref=parsed_refs)
def test_pong_and_resync_frames(ref):
    assert assert_sendable(protocol.pong(ref)) == with_ref({"type": "pong"}, ref)
    assert assert_sendable(protocol.resync()) == {"type": "resync"}


@FUZZ
@given(
    topic=server_text,
    cursor=server_text,
    event=st.dictionaries(server_text, strict_json_values, max_size=6),
    ascii_only=st.booleans(),
)
def test_event_frames(topic, cursor, event, ascii_only):
    event_json = json.dumps(event, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False)
    frame = assert_sendable(protocol.event(topic, cursor, event_json))
    assert frame == {"type": "event", "topic": topic, "cursor": cursor, "event": event}
