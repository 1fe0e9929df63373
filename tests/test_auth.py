"""The relay's handshake checks as plain functions: Origin allow-list and cookie parsing."""

import pytest
from django.test import override_settings
from websockets.datastructures import Headers
from websockets.http11 import Request

from wsserver.auth import origin_allowed, session_key_from_cookies, single_header


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
