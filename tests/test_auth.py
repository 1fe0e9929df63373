"""
The relay's handshake checks as plain functions: Origin allow-list, cookie parsing, sessions
looked up in batches.
"""

import asyncio
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.utils import timezone
from websockets.datastructures import Headers
from websockets.http11 import Request

from notifications.authorization import inbox_routes
from notifications.sessions import user_for_session_key
from wsserver.auth import (
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
    inactive.is_active = False
    inactive.save()
    changed_password.set_password("a new one")
    changed_password.save()
    expired = login(make_user()).session_key
    Session.objects.filter(session_key=expired).update(expire_date=timezone.now() - timedelta(seconds=1))
    keys = [*sessions.values(), expired, "no-such-session-key", "short"]

    # One query for the sessions, one per user (Django's own get_user), one for the groups.
    with django_assert_num_queries(1 + len(sessions) + 1):
        identities = identify_by_sessions(keys)

    assert set(identities) == {sessions[user] for user in members}
    for user in members:
        identity = identities[sessions[user]]
        assert (identity.user_id, identity.username, identity.method) == (user.pk, user.username, "cookie")
        assert identity.inbox_routes == frozenset(inbox_routes(user)) >= {f"inbox:group:{group.pk}"}
    assert {key: user_for_session_key(key) for key in keys} == {key: user for user, key in sessions.items() if user in members} | {
        key: None for key in keys if key not in identities
    }


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
