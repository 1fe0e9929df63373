"""
The relay's handshake checks as plain functions: Origin allow-list, cookie parsing, sessions
looked up in batches.
"""

import asyncio
import time
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.utils import timezone
from websockets.datastructures import Headers
from websockets.http11 import Request

from notifications import cursors
from notifications.authorization import inbox_routes
from notifications.sessions import check_sessions
from wsserver.auth import (
    Identity,
    identify_by_sessions,
    origin_allowed,
    session_key_from_cookies,
    single_header,
)
from wsserver.batching import Batched

from .factories import login, make_group, make_user


@override_settings(DEBUG=False, ALLOWED_HOSTS=["*"], WSSERVER_ALLOWED_ORIGINS=[])
def test_a_wildcard_allowed_host_allows_no_origin():
    """ALLOWED_HOSTS = ["*"] is common behind proxies; for Origins it would allow any site."""
    assert not origin_allowed("https://evil.example")
    assert not origin_allowed("http://localhost")


@override_settings(DEBUG=False, ALLOWED_HOSTS=["*", ".example.com"], WSSERVER_ALLOWED_ORIGINS=["https://app.partner.org/"])
def test_explicit_hosts_and_origins_still_count_beside_a_wildcard():
    assert origin_allowed("https://www.example.com:8443")
    assert origin_allowed("https://app.partner.org")
    assert not origin_allowed("http://app.partner.org")  # a full origin includes its scheme
    assert not origin_allowed("https://evil.example")


@override_settings(SESSION_COOKIE_NAME="sessionid")
@pytest.mark.parametrize(
    "header, expected",
    [
        ("sessionid=abc", "abc"),
        ("a=b c; sessionid=abc", "abc"),
        ('x={"a":1}; sessionid=abc', "abc"),
        ('foo="bar; sessionid=abc', "abc"),
        ("other=1", None),
        ("", None),
        (None, None),
    ],
)
def test_session_key_from_cookies_parses_like_django(header, expected):
    assert session_key_from_cookies(header) == expected


def test_a_header_sent_twice_counts_as_absent():
    headers = Headers([("Origin", "http://localhost"), ("Origin", "https://evil.example"), ("Cookie", "a=1")])
    request = Request("/ws/", headers)
    assert single_header(request, "Origin") is None
    assert single_header(request, "Cookie") == "a=1"
    assert single_header(request, "Authorization") is None


# Cookie sessions, many at once (a reconnect storm) ----------------------------------------------


@pytest.mark.django_db
def test_sessions_looked_up_together_are_judged_as_get_user_judges_each(django_assert_num_queries):
    group = make_group()
    members = [make_user(groups=[group]) for _ in range(3)]
    inactive, changed_password = make_user(), make_user()
    sessions = {user: login(user).session_key for user in [*members, inactive, changed_password]}
    deleted = make_user()
    deleted_key = login(deleted).session_key
    inactive.is_active = False
    inactive.save()
    changed_password.set_password("a new one")
    changed_password.save()
    deleted.delete()
    expired = login(make_user()).session_key
    Session.objects.filter(session_key=expired).update(expire_date=timezone.now() - timedelta(seconds=1))
    logged_out = login(make_user())
    logged_out.client.logout()
    keys = [*sessions.values(), deleted_key, expired, "no-such-session-key", "short"]

    # One query for the sessions, one per user (Django's own get_user), one for the groups, one
    # for the preferences (their mutes); a refused session whose user get_user() did not return
    # costs one more, to say why.
    with django_assert_num_queries(1 + len(sessions) + 1 + 1 + 1 + 2):
        identities = identify_by_sessions(keys)

    accepted = {key: identity for key, identity in identities.items() if isinstance(identity, Identity)}
    assert set(accepted) == {sessions[user] for user in members}
    for user in members:
        identity = accepted[sessions[user]]
        assert (identity.user_id, identity.username, identity.method) == (user.pk, user.username, "cookie")
        assert identity.inbox_routes == frozenset(inbox_routes(user)) >= {f"inbox:group:{group.pk}"}
        assert identity.joined_us == cursors.epoch_us(user.date_joined) and identity.expires > time.time()
    assert {key: str(refused) for key, refused in identities.items() if key not in accepted} == {
        sessions[inactive]: "session cookie: user inactive",
        sessions[changed_password]: "session cookie: password changed since login",
        deleted_key: "session cookie: user deleted",
        expired: "session cookie: session expired",
        "no-such-session-key": "session cookie: no session",
        "short": "session cookie: no session",
    }
    assert {key: check.user for key, check in check_sessions(keys).items()} == {key: user for user, key in sessions.items() if user in members} | {
        key: None for key in keys if key not in accepted
    }


@pytest.mark.django_db
def test_a_session_signed_with_another_secret_key_is_named(settings):
    key = login(make_user()).session_key
    settings.SECRET_KEY = "not-the-key-that-signed-the-session"
    [refused] = identify_by_sessions([key]).values()
    assert str(refused) == "session cookie: signature mismatch (is SECRET_KEY the site's?)"


async def test_batched_lookups_take_every_key_asked_for_while_a_call_runs():
    calls = []

    async def double(keys):
        calls.append(keys)
        await asyncio.sleep(0.05)
        return {key: key * 2 for key in keys if key != 3}

    batched = Batched(double, concurrency=1)
    first = asyncio.ensure_future(batched(0))
    await asyncio.sleep(0.01)  # the first call is running
    results = await asyncio.gather(*(batched(key) for key in [1, 2, 2, 3]))
    assert await first == 0
    assert results == [2, 4, 4, None]  # a key the function does not answer for: None
    assert calls == [[0], [1, 2, 3]]


async def test_a_failed_batched_lookup_fails_its_callers_and_not_the_next_ones():
    async def lookup(keys):
        if "bad" in keys:
            raise RuntimeError("database down")
        return {key: key.upper() for key in keys}

    batched = Batched(lookup, concurrency=1)
    results = await asyncio.gather(batched("bad"), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert await batched("good") == "GOOD"
