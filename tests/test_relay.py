"""
The relay end to end: real `runwsserver` subprocesses, real WebSocket clients, real Redis, and
events made the way the host site makes them (the Django admin's views, notify()).

Relay tests use transactional database access: the relay is another process, it only sees
committed rows, and transaction.on_commit callbacks (which publish) must really run.
Tests that prove an event does NOT arrive send a control event afterwards and assert that the
control is the next frame (see tests/wsclient.py).
"""

import json
import re
import time

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import HASH_SESSION_KEY
from django.core import signing
from django.db import connections, transaction
from django.test import Client
from websockets.exceptions import InvalidStatus

from notifications import announce, notify
from notifications.models import Event
from notifications.tickets import SALT

from .aio import call, live_servers
from .factories import (
    fetch_ticket,
    login,
    logout,
    make_group,
    make_user,
    session_store,
    unique,
)

pytestmark = live_servers

CURSOR = re.compile(r"^\d+-\d+$")




def cursor_key(cursor):
    milliseconds, sequence = cursor.split("-")
    return int(milliseconds), int(sequence)


def admin_rename_group(root, group):
    """Rename `group` through the admin's change form, as `root`; the new name."""
    client = Client()
    client.force_login(root)
    new_name = unique("renamed")
    response = client.post(f"/admin/auth/group/{group.pk}/change/", {"name": new_name, "permissions": []})
    assert response.status_code == 302, response.content.decode()[:2000]
    return new_name


def assert_welcome(welcome, user):
    assert welcome["user"] == {"id": user.pk, "username": user.username}
    assert welcome["topics"] == ["inbox"]
    assert CURSOR.match(welcome["cursor"])


# a. Admin activity reaches subscribers --------------------------------------------------------


async def test_admin_change_reaches_a_subscribed_staff_user(relay, ws_clients, stream):
    root = await call(make_user, "root", superuser=True)
    watcher = await call(login, await call(make_user, "watcher", staff=True, perms=["auth.view_group"]))
    group = await call(make_group)
    client, welcome = await ws_clients.with_cookie(relay, watcher)
    await client.subscribe(["model:auth.group"], ref=1)
    stream.mark()

    new_name = await call(admin_rename_group, root, group)

    frame = await client.expect_event()
    event = frame["event"]
    [(entry_id, _, published)] = stream.new_entries()
    assert frame["type"] == "event"
    assert frame["topic"] == "model:auth.group"
    assert frame["cursor"] == entry_id
    assert cursor_key(frame["cursor"]) > cursor_key(welcome["cursor"])
    assert event == published
    assert event["kind"] == "admin.change"
    assert event["target"] == {"type": "auth.group", "id": str(group.pk), "repr": new_name}
    assert event["actor"] == {"id": root.pk, "username": root.username}
    assert event["url"] == f"/admin/auth/group/{group.pk}/change/"
    assert event["title"] == f"{root.username} changed group “{new_name}”"
    assert await call(lambda: Event.objects.filter(pk=event["id"], kind="admin.change").exists())


# b. Forbidden subscriptions -------------------------------------------------------------------


async def test_subscribe_without_permission_is_forbidden_and_delivers_nothing(relay, ws_clients):
    root = await call(make_user, "root", superuser=True)
    plain = await call(login, await call(make_user, "plain", perms=["auth.add_group", "auth.view_user"]))
    watcher = await call(login, await call(make_user, "watcher", perms=["auth.change_group"]))
    group = await call(make_group)
    plain_client, _ = await ws_clients.with_cookie(relay, plain)
    watcher_client, _ = await ws_clients.with_cookie(relay, watcher)

    await plain_client.send({"type": "subscribe", "topics": ["model:auth.group"], "ref": 2})
    error = await plain_client.expect("error")
    assert (error["code"], error["ref"]) == ("forbidden", 2)
    await watcher_client.subscribe(["model:auth.group"])

    new_name = await call(admin_rename_group, root, group)
    assert (await watcher_client.expect_event())["event"]["target"]["repr"] == new_name  # it was delivered
    await call(notify, plain.user, "control")
    await plain_client.expect_event("control")


async def test_object_topic_without_permission_is_forbidden(relay, ws_clients):
    plain = await call(login, await call(make_user))
    group = await call(make_group)
    client, _ = await ws_clients.with_cookie(relay, plain)
    await client.send({"type": "subscribe", "topics": [f"object:auth.group:{group.pk}"], "ref": "o"})
    error = await client.expect("error")
    assert (error["code"], error["ref"]) == ("forbidden", "o")


async def test_unknown_topic_and_partial_acceptance(relay, ws_clients):
    watcher = await call(login, await call(make_user, perms=["auth.view_group"]))
    client, _ = await ws_clients.with_cookie(relay, watcher)
    await client.send({"type": "subscribe", "topics": ["model:nope.nothing", "model:auth.group", "model:auth.user"], "ref": 4})
    first, second = await client.expect("error"), await client.expect("error")
    assert {(first["code"], first["ref"]), (second["code"], second["ref"])} == {("unknown_topic", 4), ("forbidden", 4)}
    subscribed = await client.expect("subscribed")
    assert (subscribed["topics"], subscribed["ref"]) == (["model:auth.group"], 4)


# c. Cookie and ticket authentication ----------------------------------------------------------


async def test_cookie_authentication(relay, ws_clients):
    user = await call(make_user, "cookie")
    client, welcome = await ws_clients.with_cookie(relay, await call(login, user))
    assert_welcome(welcome, user)
    await call(notify, user, "live")
    frame = await client.expect_event("live")
    assert frame["topic"] == "inbox"


async def test_ticket_authentication(relay, ws_clients):
    user = await call(make_user, "ticket")
    session = await call(login, user)
    response = await call(session.client.get, "/notifications/ws-ticket/")
    assert response.status_code == 200
    assert response["Cache-Control"] and "no-cache" in response["Cache-Control"]
    body = json.loads(response.content)
    assert body["expires_in"] == 60
    assert body["url"].startswith("ws://") and body["url"].endswith("/ws/")
    client, welcome = await ws_clients.with_ticket(relay, body["ticket"])
    assert_welcome(welcome, user)
    await call(notify, user, "over a ticket")
    await client.expect_event("over a ticket")


async def test_ticket_endpoint_needs_a_logged_in_user():
    response = await call(Client().get, "/notifications/ws-ticket/")
    assert response.status_code == 401
    assert json.loads(response.content)["error"] == "not_authenticated"


async def test_a_foreign_origin_may_use_a_ticket(relay, ws_clients):
    """Tickets exist for pages the cookie cannot serve; the Origin check is for cookies only."""
    user = await call(make_user)
    ticket = await call(fetch_ticket, await call(login, user))
    client = await ws_clients.open(relay, origin="http://other-site.example")
    await client.send({"type": "auth", "token": ticket})
    assert_welcome(await client.expect("welcome"), user)


# d. Bad tickets close the socket with 4001 ----------------------------------------------------


class PastTimestampSigner(signing.TimestampSigner):
    """Signs as if it were an hour ago."""

    def timestamp(self):
        return signing.b62_encode(int(time.time()) - 3600)


def forged(ticket, other):
    """The same claims signed with another key."""
    return signing.dumps(signing.loads(ticket, salt=SALT), salt=SALT, key="not-the-secret-key", compress=False)


def expired(ticket, other):
    """The same claims (the nonce is still in Redis), signed with a timestamp an hour old."""
    return PastTimestampSigner(salt=SALT).sign_object(signing.loads(ticket, salt=SALT), compress=False)


def resigned_now(ticket, other):
    """Control for `expired`: the same re-signing with the current time must be accepted."""
    return signing.TimestampSigner(salt=SALT).sign_object(signing.loads(ticket, salt=SALT), compress=False)


def tampered(ticket, other):
    """The payload changed to name another user, the signature kept."""
    payload, timestamp, signature = ticket.rsplit(":", 2)
    claims = json.loads(signing.b64_decode(payload.encode()))
    claims["u"] = str(other.pk)
    new_payload = signing.b64_encode(json.dumps(claims, separators=(",", ":")).encode()).decode()
    return f"{new_payload}:{timestamp}:{signature}"


def flipped_signature(ticket, other):
    return ticket[:-1] + ("A" if ticket[-1] != "A" else "B")


def garbage(ticket, other):
    return "not-a-ticket"


@pytest.mark.parametrize("make_bad_ticket", [forged, expired, tampered, flipped_signature, garbage])
async def test_bad_tickets_close_with_4001(relay, ws_clients, make_bad_ticket):
    user, other = await call(make_user), await call(make_user, "other")
    ticket = await call(fetch_ticket, await call(login, user))
    bad = make_bad_ticket(ticket, other)
    assert bad != ticket
    client = await ws_clients.open(relay, origin=None)
    await client.send({"type": "auth", "token": bad})
    await client.expect_close(4001)
    # Control: the genuine ticket (and, for the expiry test, a fresh re-signing) is accepted.
    for good in (ticket, resigned_now(ticket, other)):
        _, welcome = await ws_clients.with_ticket(relay, good)
        assert_welcome(welcome, user)


async def test_ticket_dies_with_its_session(relay, ws_clients):
    user = await call(make_user)
    session = await call(login, user)
    ticket = await call(fetch_ticket, session)
    await call(logout, session)
    client = await ws_clients.open(relay, origin=None)
    await client.send({"type": "auth", "token": ticket})
    await client.expect_close(4001)


def keep_session_after_password_change(session):
    """Change the password and keep the session alive, as update_session_auth_hash() does."""
    user = session.user
    user.set_password("a-new-password")
    user.save()
    store = session_store(session.session_key)
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()


async def test_password_change_kills_tickets_even_when_the_session_survives(relay, ws_clients):
    user = await call(make_user)
    session = await call(login, user)
    ticket = await call(fetch_ticket, session)
    await call(keep_session_after_password_change, session)
    await ws_clients.with_cookie(relay, session)  # control: the session itself is still valid
    client = await ws_clients.open(relay, origin=None)
    await client.send({"type": "auth", "token": ticket})
    await client.expect_close(4001)


@pytest.mark.parametrize("first_message", [{"type": "ping", "ref": 1}, {"type": "auth"}, "not json", b"\x00binary"])
async def test_first_message_must_be_auth(relay, ws_clients, first_message):
    client = await ws_clients.open(relay, origin=None)
    await client.send(first_message)
    await client.expect_close(4001)


# e. Cookie handshakes from foreign origins ----------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.example", None, "null", "http://localhost.evil.example", "ftp://localhost", "http://127.0.0.2"]
)
async def test_cookie_handshake_from_a_foreign_origin_is_refused(relay, ws_clients, origin):
    session = await call(login, await call(make_user))
    with pytest.raises(InvalidStatus) as info:
        await ws_clients.open(relay, cookie=session.cookie, origin=origin)
    assert info.value.response.status_code == 403
    # Control: the same cookie from an allowed origin is welcomed.
    await ws_clients.with_cookie(relay, session)


@pytest.mark.parametrize("origin", ["http://localhost", "http://localhost:8000", "https://127.0.0.1:8443", "http://[::1]:8000"])
async def test_cookie_handshake_from_allowed_origins(relay, ws_clients, origin):
    user = await call(make_user)
    client = await ws_clients.open(relay, cookie=(await call(login, user)).cookie, origin=origin)
    assert_welcome(await client.expect("welcome"), user)


async def test_wrong_path_is_404(relay, ws_clients):
    with pytest.raises(InvalidStatus) as info:
        await ws_clients.open(relay, origin=None, path="/other/")
    assert info.value.response.status_code == 404


# f. notify(group) ------------------------------------------------------------------------------


async def test_notify_group_reaches_every_member_and_no_one_else(relay, ws_clients):
    members = [await call(make_user, "member") for _ in range(2)]
    outsider = await call(make_user, "outsider")
    group = await call(make_group, members=members)
    await call(make_group, members=[outsider])  # in another group
    member_clients = [(await ws_clients.with_cookie(relay, await call(login, m)))[0] for m in members]
    outsider_client, _ = await ws_clients.with_cookie(relay, await call(login, outsider))

    await call(notify, group, "team news")
    for client in member_clients:
        frame = await client.expect_event("team news")
        assert frame["topic"] == "inbox"

    await call(notify, outsider, "control")
    await outsider_client.expect_event("control")
    await call(notify, members, "control for members")
    for client in member_clients:  # and each member got the group event exactly once
        await client.expect_event("control for members")


async def test_announcements_reach_their_audience(relay, ws_clients):
    staff, plain = await call(make_user, "staff", staff=True), await call(make_user, "plain")
    staff_client, _ = await ws_clients.with_cookie(relay, await call(login, staff))
    plain_client, _ = await ws_clients.with_cookie(relay, await call(login, plain))
    await call(announce, "for staff", audience="staff")
    await call(announce, "for all")
    await staff_client.expect_event("for staff")
    await staff_client.expect_event("for all")
    await plain_client.expect_event("for all")  # and not "for staff" before it


# g. Rolled-back transactions -------------------------------------------------------------------


def notify_and_roll_back(user):
    try:
        with transaction.atomic():
            notify(user, "rolled back")
            announce("rolled back announcement")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass


async def test_rolled_back_transaction_delivers_nothing(relay, ws_clients):
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await call(notify_and_roll_back, user)
    await call(notify, user, "control")
    await client.expect_event("control")


# h. Several relay processes --------------------------------------------------------------------


async def test_two_relays_each_deliver_every_event_once_in_order(relay, relay_factory, ws_clients):
    second_relay = await call(relay_factory)
    user = await call(make_user)
    session = await call(login, user)
    clients = [(await ws_clients.with_cookie(r, session))[0] for r in (relay, second_relay)]

    def send_twenty():
        return [notify(user, f"event {i}").pk for i in range(20)]

    event_ids = await call(send_twenty)
    received = []
    for client in clients:
        frames = [await client.expect_event() for _ in range(20)]
        assert [f["event"]["title"] for f in frames] == [f"event {i}" for i in range(20)]
        assert [f["event"]["id"] for f in frames] == event_ids
        cursors = [cursor_key(f["cursor"]) for f in frames]
        assert cursors == sorted(set(cursors))  # strictly increasing
        received.append([f["cursor"] for f in frames])
    assert received[0] == received[1]  # the cursor is the deployment-wide stream position

    await call(notify, user, "control")
    for client in clients:  # no duplicate of any of the twenty came before it
        await client.expect_event("control")


# i. Ping, unsubscribe, model:*, logout ---------------------------------------------------------


async def test_ping_pong(relay, ws_clients):
    client, _ = await ws_clients.with_cookie(relay, await call(login, await call(make_user)))
    for ref in (1, "abc", 0):
        await client.send({"type": "ping", "ref": ref})
        assert await client.recv() == {"type": "pong", "ref": ref}
    await client.send({"type": "ping"})
    assert await client.recv() == {"type": "pong"}


async def test_bad_frames_get_errors_and_the_connection_stays_usable(relay, ws_clients):
    client, _ = await ws_clients.with_cookie(relay, await call(login, await call(make_user)))
    for frame, ref in [
        ("not json", None),
        (b'{"type": "ping"}', None),
        ({"type": "bogus", "ref": 8}, 8),
        ({"type": "subscribe", "topics": [], "ref": 9}, 9),
        ({"type": "auth", "token": "x", "ref": 10}, 10),  # already authenticated
    ]:
        await client.send(frame)
        error = await client.expect("error")
        assert error["code"] == "bad_request"
        assert error.get("ref") == ref
    await client.send({"type": "subscribe", "topics": [f"model:app.m{i}" for i in range(101)], "ref": 11})
    error = await client.expect("error")
    assert (error["code"], error["ref"]) == ("too_many_topics", 11)
    await client.send({"type": "ping", "ref": 12})
    assert await client.recv() == {"type": "pong", "ref": 12}


async def test_unsubscribe(relay, ws_clients):
    root = await call(make_user, "root", superuser=True)
    watcher = await call(login, await call(make_user, "watcher", perms=["auth.view_group"]))
    group = await call(make_group)
    client, _ = await ws_clients.with_cookie(relay, watcher)
    await client.subscribe(["model:auth.group"])
    await call(admin_rename_group, root, group)
    assert (await client.expect_event())["topic"] == "model:auth.group"

    await client.send({"type": "unsubscribe", "topics": ["model:auth.group"], "ref": 5})
    assert await client.recv() == {"type": "unsubscribed", "topics": ["model:auth.group"], "reason": "requested", "ref": 5}
    await call(admin_rename_group, root, group)
    await call(notify, watcher.user, "control")
    await client.expect_event("control")


async def test_inbox_cannot_be_unsubscribed(relay, ws_clients):
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await client.send({"type": "unsubscribe", "topics": ["inbox"], "ref": 6})
    error = await client.expect("error")
    assert (error["code"], error["ref"]) == ("bad_request", 6)
    await call(notify, user, "still here")
    await client.expect_event("still here")


async def test_all_models_receives_permitted_models_only(relay, ws_clients):
    root = await call(make_user, "root", superuser=True)
    watcher = await call(login, await call(make_user, "watcher", perms=["auth.view_group"]))
    group, someone = await call(make_group), await call(make_user, "someone")
    client, _ = await ws_clients.with_cookie(relay, watcher)
    await client.subscribe(["model:*"], ref="all")

    new_name = await call(admin_rename_group, root, group)
    frame = await client.expect_event()
    assert frame["topic"] == "model:auth.group"
    assert frame["event"]["target"] == {"type": "auth.group", "id": str(group.pk), "repr": new_name}

    # An admin change of a user: watcher may not view users.
    await call(LogEntry.objects.log_actions, root.pk, [someone], CHANGE, single_object=True)
    await call(notify, watcher.user, "control")
    await client.expect_event("control")


async def test_overlapping_subscriptions_deliver_once(relay, ws_clients):
    root = await call(make_user, "root", superuser=True)
    watcher = await call(login, await call(make_user, "watcher", perms=["auth.view_group"]))
    group = await call(make_group)
    client, _ = await ws_clients.with_cookie(relay, watcher)
    await client.subscribe(["model:*", "model:auth.group", f"object:auth.group:{group.pk}"])

    await call(admin_rename_group, root, group)
    frame = await client.expect_event()
    assert frame["topic"] == f"object:auth.group:{group.pk}"  # the most specific topic, once
    await call(notify, watcher.user, "control 1")
    await client.expect_event("control 1")

    # Dropping two of the three keeps the routes model:* still needs.
    await client.send({"type": "unsubscribe", "topics": ["model:auth.group", f"object:auth.group:{group.pk}"]})
    await client.expect("unsubscribed")
    await call(admin_rename_group, root, group)
    assert (await client.expect_event())["topic"] == "model:auth.group"
    await call(notify, watcher.user, "control 2")
    await client.expect_event("control 2")


async def test_logout_makes_the_cookie_fall_back_to_ticket_mode(relay, ws_clients):
    user = await call(make_user)
    session = await call(login, user)
    stale_cookie = session.cookie
    await ws_clients.with_cookie(relay, session)  # control: the cookie works while logged in
    await call(logout, session)

    # The handshake is accepted (allowed Origin) but the session is gone: the relay now
    # waits for a ticket, so a non-auth first message is refused ...
    client = await ws_clients.open(relay, cookie=stale_cookie)
    await client.send({"type": "ping", "ref": 1})
    await client.expect_close(4001)

    # ... and a ticket from a new session is accepted on such a connection.
    ticket = await call(fetch_ticket, await call(login, user))
    client = await ws_clients.open(relay, cookie=stale_cookie)
    await client.send({"type": "auth", "token": ticket})
    assert_welcome(await client.expect("welcome"), user)


def end_session(session, how):
    user = session.user
    if how == "password changed":
        user.set_password("a-new-password")
        user.save()
    elif how == "deactivated":
        user.is_active = False
        user.save()
    elif how == "deleted":
        user.delete()
    elif how == "session deleted":
        session_store(session.session_key).delete()


@pytest.mark.parametrize("how", ["password changed", "deactivated", "deleted", "session deleted"])
async def test_a_cookie_whose_session_is_no_longer_valid_is_not_accepted(relay, ws_clients, how):
    session = await call(login, await call(make_user))
    await ws_clients.with_cookie(relay, session)  # control
    await call(end_session, session, how)
    client = await ws_clients.open(relay, cookie=session.cookie)
    await client.send({"type": "ping", "ref": 1})
    await client.expect_close(4001)


async def test_no_auth_within_the_timeout_closes_with_4001(relay_factory, ws_clients):
    """
    With the default WSSERVER_AUTH_TIMEOUT (10 s) this would take 10 s: this test starts its own
    relay with tests/settings_strict.py (1 s).
    """
    quick_relay = await call(relay_factory, settings_module="tests.settings_strict")
    user = await call(make_user)
    session = await call(login, user)
    stale_cookie = session.cookie
    await call(logout, session)
    client = await ws_clients.open(quick_relay, cookie=stale_cookie)
    started = time.monotonic()
    await client.expect_close(4001, timeout=5)
    assert 0.8 <= time.monotonic() - started < 4


# Subscriptions are authorized with the user as they are now -----------------------------------


async def test_a_withdrawn_permission_counts_for_later_subscriptions(relay, ws_clients):
    """The relay loads the user afresh for each subscribe, as Django does for each request."""
    user = await call(make_user, perms=["auth.view_group"])
    session = await call(login, user)
    client, _ = await ws_clients.with_cookie(relay, session)
    await client.subscribe(["model:auth.group"])
    await call(user.user_permissions.clear)
    revoked = await client.expect("unsubscribed")  # the relay was told, and looked again
    assert (revoked["topics"], revoked["reason"]) == (["model:auth.group"], "permission_revoked")
    await client.send({"type": "subscribe", "topics": ["object:auth.group:1"], "ref": 5})
    error = await client.expect("error")
    assert (error["code"], error["ref"]) == ("forbidden", 5)


def delete_session_unseen(session):
    """End a session behind the app's back (raw SQL: no signal, so no re-check message)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("DELETE FROM django_session WHERE session_key = %s", [session.cookie])


async def test_subscribing_after_the_session_ended_closes_with_4003(relay, ws_clients):
    session = await call(login, await call(make_user, perms=["auth.view_group"]))
    client, _ = await ws_clients.with_cookie(relay, session)
    await call(delete_session_unseen, session)
    await client.send({"type": "subscribe", "topics": ["model:auth.group"]})
    await client.expect_close(4003)


async def test_topic_names_are_answered_and_delivered_canonically(relay, ws_clients):
    root = await call(make_user, "root", superuser=True)
    watcher = await call(login, await call(make_user, perms=["auth.view_group"]))
    group = await call(make_group)
    client, _ = await ws_clients.with_cookie(relay, watcher)
    await client.send({"type": "subscribe", "topics": ["model:auth.Group", f"object:auth.group:0{group.pk}"], "ref": 1})
    subscribed = await client.expect("subscribed")
    assert subscribed["topics"] == ["model:auth.group", f"object:auth.group:{group.pk}"]
    new_name = await call(admin_rename_group, root, group)
    frame = await client.expect_event()
    assert (frame["topic"], frame["event"]["target"]["repr"]) == (f"object:auth.group:{group.pk}", new_name)


async def test_the_session_cookie_is_found_among_cookies_python_cannot_parse(relay, ws_clients):
    """Consent and analytics cookies often break http.cookies; Django's parser copes, so must we."""
    session = await call(login, await call(make_user))
    from django.conf import settings

    cookie = f'consent=a b; prefs={{"a":1}}; {settings.SESSION_COOKIE_NAME}={session.cookie}'
    client = await ws_clients.open(relay, headers={"Cookie": cookie})
    assert (await client.expect("welcome"))["user"]["id"] == session.user.pk
