"""
Secrets stay secret: tickets are signed under a salt of their own, and neither a ticket, nor its
signature, nor the session key ever reaches a log.

The full run uses a real Django (runserver) and a real relay, both logging at DEBUG
(tests/settings_debug_logging.py), and a browser's path through them over real HTTP: the login
form, the ticket endpoint, the relay with that ticket and with the cookie, an event sent from
the demo page, then the abuse a ticket may meet (tampered, re-signed under another salt, sent
twice, put in the URL or in the wrong field, reused after logout). Afterwards every line both
servers wrote, and every record the test process logged, is searched for the secrets.
"""

import http.cookiejar
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.conf import settings
from django.core import signing
from websockets.exceptions import InvalidStatus

from notifications import notify
from notifications.tickets import SALT

from . import relay as relays
from .aio import call, live_servers
from .factories import make_user

pytestmark = live_servers

PASSWORD = "correct horse battery staple"
HTTP_TIMEOUT = 10




@pytest.fixture
def all_logs_at_debug(caplog):
    """
    caplog's handler on the root logger and on every logger that does not propagate (the
    project's own, see project/settings.py), everything at DEBUG; restored afterwards.
    """
    caplog.set_level(logging.DEBUG)
    changed = []
    for name, each in list(logging.root.manager.loggerDict.items()):
        if isinstance(each, logging.Logger):
            changed.append((each, each.level, each.propagate))
            each.setLevel(logging.DEBUG)
            if not each.propagate:
                each.addHandler(caplog.handler)
    yield caplog
    for each, level, _propagate in changed:
        each.setLevel(level)
        if caplog.handler in each.handlers:
            each.removeHandler(caplog.handler)


# The dedicated salt ----------------------------------------------------------------------------


class Browser:
    """Real HTTP to runserver with a cookie jar, as a browser (urllib: no test Client shortcuts)."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def cookie(self, name):
        return next((c.value for c in self.cookies if c.name == name), None)

    def request(self, method, path, data=None, headers=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def csrf_token(self):
        return self.cookie(settings.CSRF_COOKIE_NAME)

    def log_in(self, username, password):
        status, page = self.request("GET", "/login/")
        assert status == 200, page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, page = self.request(
            "POST", "/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/"}
        )
        assert status == 200 and "Wrong username" not in page, page[:2000]  # redirected to the home page
        assert self.cookie(settings.SESSION_COOKIE_NAME), "no session cookie after logging in"

    def ticket(self):
        status, body = self.request("GET", "/notifications/ws-ticket/")
        assert status == 200, body
        return json.loads(body)

    def send_to_myself(self, title):
        """The demo page's form, as its script posts it: notify(request.user, title)."""
        status, body = self.request(
            "POST", "/", {"title": title}, {"Accept": "application/json", "X-CSRFToken": self.csrf_token()}
        )
        assert status == 201, body
        return json.loads(body)["id"]

    def log_out(self):
        status, body = self.request("POST", "/logout/", {"csrfmiddlewaretoken": self.csrf_token()})
        assert status == 200, body[:2000]  # redirected to the home page, then its login page


def signature_of(ticket):
    return ticket.rsplit(":", 1)[1]


def claims_of(ticket):
    return signing.loads(ticket, salt=SALT)


def user_with_password():
    user = make_user("secret-keeper")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_tickets_are_signed_with_a_dedicated_salt(client):
    user = make_user("salted")
    client.force_login(user)
    response = client.get("/notifications/ws-ticket/")
    assert response.status_code == 200
    ticket = response.json()["ticket"]

    assert SALT == "notifications.ws-ticket"
    claims = signing.loads(ticket, salt="notifications.ws-ticket", max_age=60)
    assert claims["u"] == str(user.pk)
    other_salts = ["", "django.core.signing", "django.contrib.sessions.backends.signed_cookies", "notifications", "ws-ticket"]
    for other_salt in other_salts:
        with pytest.raises(signing.BadSignature):
            signing.loads(ticket, salt=other_salt)
    with pytest.raises(signing.BadSignature):
        signing.loads(ticket)  # the default salt
    # The session key is not in the ticket: only a nonce that Redis maps to it.
    session_key = client.session.session_key
    payload = signing.b64_decode(ticket.split(":", 1)[0].encode()).decode()
    assert session_key not in payload
    assert session_key not in ticket


# The full run ----------------------------------------------------------------------------------


def resigned(ticket, salt):
    """The same claims signed with SECRET_KEY under another salt: what a value signed
    elsewhere on the site would look like."""
    return signing.dumps(claims_of(ticket), salt=salt, compress=False)


def tampered(ticket, user_pk):
    payload, timestamp, signature = ticket.rsplit(":", 2)
    claims = json.loads(signing.b64_decode(payload.encode()))
    claims["u"] = str(user_pk)
    new_payload = signing.b64_encode(json.dumps(claims, separators=(",", ":")).encode()).decode()
    return f"{new_payload}:{timestamp}:{signature}"


def variants(secret):
    """The forms a secret could be logged in: as it is, URL-quoted, JSON-escaped."""
    return {secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}


def leaks(text, secrets):
    return sorted({name for name, secret in secrets.items() for form in variants(secret) if form in text})


async def test_no_ticket_signature_or_session_key_in_any_log(relay_factory, tmp_path, ws_clients, all_logs_at_debug):
    relay = await call(relay_factory, settings_module="tests.settings_debug_logging")
    django = await call(relays.start_django, tmp_path, relay, settings_module="tests.settings_debug_logging")
    secrets = {}
    try:
        user = await call(user_with_password)
        other = await call(make_user, "other")
        browser = Browser(django.url)
        await call(browser.log_in, user.username, PASSWORD)
        session_key = browser.cookie(settings.SESSION_COOKIE_NAME)
        secrets["session key"] = session_key

        answer = await call(browser.ticket)
        ticket = answer["ticket"]
        assert answer["url"] == relay.url
        secrets["ticket"], secrets["ticket signature"] = ticket, signature_of(ticket)
        # Signed under the dedicated salt, with the run's SECRET_KEY (the servers share the settings).
        assert claims_of(ticket)["u"] == str(user.pk)

        # The ticket works, on two connections (it may be used several times within its minute).
        by_ticket, welcome = await ws_clients.with_ticket(relay, ticket)
        assert welcome["user"]["id"] == user.pk
        by_ticket_again, _ = await ws_clients.with_ticket(relay, ticket)
        by_cookie, _ = await ws_clients.with_cookie(relay, _Cookie(session_key))

        # Sent twice on one connection: refused without echoing it, the connection carries on.
        await by_ticket.send({"type": "auth", "token": ticket, "ref": "again"})
        error = await by_ticket.expect("error")
        assert (error["code"], error["ref"]) == ("bad_request", "again")
        assert ticket not in json.dumps(error) and signature_of(ticket) not in json.dumps(error)

        # Events: from the demo page over HTTP, and from code.
        event_id = await call(browser.send_to_myself, "sent from the page")
        await call(notify, user, "sent from code")
        for client in (by_ticket, by_ticket_again, by_cookie):
            assert (await client.expect_event("sent from the page"))["event"]["id"] == event_id
            await client.expect_event("sent from code")

        # A ticket in the wrong fields is a client's mistake: answered, not logged.
        await by_ticket_again.send({"type": "subscribe", "topics": [ticket, f"object:auth.user:{ticket}"], "ref": 1})
        assert {(await by_ticket_again.expect("error"))["code"] for _ in range(2)} <= {"unknown_topic", "bad_request"}
        await by_ticket_again.send({"type": "resume", "cursor": ticket})
        assert (await by_ticket_again.expect("error"))["code"] == "bad_request"
        await by_ticket_again.send({"type": ticket})
        assert (await by_ticket_again.expect("error"))["code"] == "bad_request"

        # Bad tickets close with 4001: tampered (the genuine signature kept), a flipped
        # signature, and the same claims signed under other salts.
        bad_tickets = {
            "tampered": tampered(ticket, other.pk),
            "flipped": ticket[:-1] + ("A" if ticket[-1] != "A" else "B"),
            "default salt": resigned(ticket, ""),
            "session salt": resigned(ticket, "django.contrib.sessions.backends.signed_cookies"),
        }
        for name, bad in bad_tickets.items():
            secrets[f"{name} ticket"] = bad
            client = await ws_clients.open(relay, origin=None)
            await client.send({"type": "auth", "token": bad})
            await client.expect_close(4001)

        # In the URL: refused before the socket opens.
        for parameter in ("ticket", "token"):
            with pytest.raises(InvalidStatus) as info:
                await ws_clients.open(relay, origin=None, path=f"/ws/?{parameter}={urllib.parse.quote(ticket)}")
            assert info.value.response.status_code == 400

        # A second ticket, then logout: the sockets of the session close with 4003, and the
        # tickets no longer open one (4001).
        second = (await call(browser.ticket))["ticket"]
        assert second != ticket
        secrets["second ticket"], secrets["second ticket signature"] = second, signature_of(second)
        await call(browser.log_out)
        for client in (by_ticket, by_ticket_again, by_cookie):
            await client.expect_close(4003)
        for each in (ticket, second):
            client = await ws_clients.open(relay, origin=None)
            await client.send({"type": "auth", "token": each})
            await client.expect_close(4001)
        await ws_clients.close_all()
    finally:
        # Stopped before reading their logs: everything they had to say is written.
        await call(django.stop)
        await call(relay.stop)

    relay_log, django_log = relay.output(), django.output()
    # Positive controls: the logs are complete and at DEBUG, so an absence means something.
    assert "Connected" in relay_log and "by ticket" in relay_log and "by cookie" in relay_log, relay_log
    assert "Refused" in relay_log, relay_log
    assert "GET /notifications/ws-ticket/" in django_log and "POST /login/" in django_log, django_log
    assert re.search(r"\] DEBUG ", relay_log + django_log), "no DEBUG line: the servers do not log at DEBUG"
    assert all_logs_at_debug.records, "the test process logged nothing at all"

    for name, text in (("the relay", relay_log), ("runserver", django_log)):
        found = leaks(text, secrets)
        assert not found, f"{name} logged {found}:\n" + "\n".join(
            line for line in text.splitlines() if leaks(line, secrets)
        )
    # The test process's own logging, less the WebSocket client library's frame dumps: that
    # client stands for the browser, which holds the ticket by definition.
    for record in all_logs_at_debug.records:
        if record.name.startswith("websockets.client"):
            continue
        text = record.getMessage() + (record.exc_text or "")
        assert not leaks(text, secrets), f"{record.name} logged {leaks(text, secrets)}: {text}"


class _Cookie:
    """What WSClients.with_cookie needs of a login: the session cookie's value."""

    def __init__(self, value):
        self.cookie = value
