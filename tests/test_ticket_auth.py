"""
The ticket endpoint authenticates as the site's API does (NOTIFICATIONS_TICKET_AUTHENTICATION):
Django's session by default, Django REST framework's token and session authentication, any
callable; CSRF where a cookie authenticates, none for a token; and the setting checked.
"""

import json
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.test import Client, modify_settings, override_settings
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authtoken.models import Token

from notifications import checks, notify
from notifications.sessions import check_sessions
from notifications.tickets import check_ticket

from .aio import call, live_servers
from .factories import login, make_user

TICKET = "/notifications/ws-ticket/"
TOKEN = "rest_framework.authentication.TokenAuthentication"
DRF_SESSION = "rest_framework.authentication.SessionAuthentication"
BEARER_SALT = "tests.bearer"


@csrf_exempt
def bearer_user(request):
    """A site's own API authentication: `Authorization: Bearer <signed user id>`, no cookie read."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer":
        return None
    try:
        return get_user_model().objects.get(pk=signing.loads(value, salt=BEARER_SALT))
    except (signing.BadSignature, get_user_model().DoesNotExist):
        return None


def header_user_without_csrf_mark(request):
    """The same, not marked csrf_exempt: the endpoint checks CSRF on POST for it."""
    return bearer_user(request)


def bearer(user):
    return f"Bearer {signing.dumps(user.pk, salt=BEARER_SALT)}"


def ticket_from(response):
    assert response.status_code == 200, response.content
    return response.json()["ticket"]


def csrf_client(user=None):
    """A browser-like client: the CSRF check enforced, logged in as `user` if given."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def csrf_token(client):
    """The CSRF token a page gives its scripts: the cookie a form page sets (sent back as X-CSRFToken)."""
    assert client.get("/login/").status_code in (200, 302)
    return client.cookies[settings.CSRF_COOKIE_NAME].value


@pytest.fixture
def default_setting():
    """NOTIFICATIONS_TICKET_AUTHENTICATION unset, as on a site that never heard of it."""
    with override_settings():
        del settings.NOTIFICATIONS_TICKET_AUTHENTICATION
        yield


# Django's session, the default ------------------------------------------------------------------


@pytest.mark.django_db
def test_by_default_the_session_gets_a_ticket_bound_to_itself(default_setting):
    user = make_user()
    session = login(user)
    checked, session_key = check_ticket(ticket_from(session.client.get(TICKET)))
    assert checked.user == user and session_key == session.session_key
    assert json.loads(Client().get(TICKET).content)["error"] == "not_authenticated"


@pytest.mark.django_db
def test_by_default_a_token_is_not_enough(default_setting):
    user = make_user()
    response = csrf_client().post(TICKET, HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"


@pytest.mark.django_db
def test_a_session_post_needs_the_csrf_token(default_setting):
    client = csrf_client(make_user())
    refused = client.post(TICKET)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    ticket_from(client.post(TICKET, HTTP_X_CSRFTOKEN=csrf_token(client)))


# Django REST framework -------------------------------------------------------------------------


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[TOKEN])
@pytest.mark.django_db
def test_a_drf_token_gets_a_ticket_without_csrf_or_cookie():
    user = make_user()
    client = csrf_client()
    response = client.post(TICKET, HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    checked, session_key = check_ticket(ticket_from(response))
    assert checked.user == user
    assert settings.SESSION_COOKIE_NAME not in response.cookies  # no session handed to the app
    # The session opened for the token's sockets lasts NOTIFICATIONS_API_SESSION_AGE.
    expires = check_sessions([session_key])[session_key].expires.timestamp()
    assert abs(expires - (time.time() + 3600)) < 60


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[TOKEN], NOTIFICATIONS_API_SESSION_AGE=120)
@pytest.mark.django_db
def test_the_api_session_age_is_a_setting():
    user = make_user()
    response = csrf_client().post(TICKET, HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    _, session_key = check_ticket(ticket_from(response))
    assert abs(check_sessions([session_key])[session_key].expires.timestamp() - (time.time() + 120)) < 30


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[TOKEN])
@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_wrong_token_is_answered_401_in_json(method):
    response = getattr(csrf_client(), method)(TICKET, HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"error": "authentication_failed", "message": "Invalid token."}


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[TOKEN])
@pytest.mark.django_db
def test_an_inactive_users_token_gets_nothing():
    user = make_user(active=False)
    response = csrf_client().post(TICKET, HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert response.status_code == 401 and response.json()["error"] == "authentication_failed"


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[TOKEN, DRF_SESSION])
@pytest.mark.django_db
def test_drf_session_authentication_checks_csrf_on_post():
    user = make_user()
    client = csrf_client(user)
    refused = client.post(TICKET)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    assert "CSRF" in refused.json()["message"]
    session_key = client.session.session_key
    assert check_ticket(ticket_from(client.post(TICKET, HTTP_X_CSRFTOKEN=csrf_token(client))))[1] == session_key
    assert check_ticket(ticket_from(client.get(TICKET)))[1] == session_key


@live_servers[0]
@live_servers[1]
async def test_a_drf_token_ticket_opens_a_socket_on_a_real_relay(relay, ws_clients):
    user = await call(make_user, "mobile")
    token = await call(Token.objects.create, user=user)
    with override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[TOKEN]):
        response = await call(csrf_client().post, TICKET, HTTP_AUTHORIZATION=f"Token {token.key}")
    client, welcome = await ws_clients.with_ticket(relay, ticket_from(response))
    assert welcome["user"] == {"id": user.pk, "username": user.username}
    await call(notify, user, "to the phone")
    await client.expect_event("to the phone")


# Any callable ----------------------------------------------------------------------------------


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=["tests.test_ticket_auth.bearer_user", "notifications.ticketauth.session_user"])
@pytest.mark.django_db
def test_a_callable_marked_csrf_exempt_authenticates_without_csrf():
    user, other = make_user(), make_user()
    checked, _ = check_ticket(ticket_from(csrf_client().post(TICKET, HTTP_AUTHORIZATION=bearer(user))))
    assert checked.user == user
    # The next in the list still serves the session, with its CSRF check.
    refused = csrf_client(other).post(TICKET, HTTP_AUTHORIZATION="Bearer forged")
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=["tests.test_ticket_auth.header_user_without_csrf_mark"])
@pytest.mark.django_db
def test_a_callable_not_marked_gets_the_csrf_check_on_post():
    user = make_user()
    client = csrf_client()
    refused = client.post(TICKET, HTTP_AUTHORIZATION=bearer(user))
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    assert check_ticket(ticket_from(client.get(TICKET, HTTP_AUTHORIZATION=bearer(user))))[0].user == user


@override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=["tests.test_ticket_auth.bearer_user"])
@pytest.mark.django_db
def test_a_token_users_ticket_dies_with_a_password_change():
    user = make_user()
    ticket = ticket_from(csrf_client().post(TICKET, HTTP_AUTHORIZATION=bearer(user)))
    user.set_password("changed")
    user.save()
    assert check_ticket(ticket)[0].user is None


def test_no_cors_headers_unless_the_site_adds_them(db):
    response = Client().options(TICKET, HTTP_ORIGIN="https://elsewhere.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


# The setting, checked ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, words",
    [
        ("notifications.ticketauth.session_user", "is a list of dotted paths"),
        ([], "is empty"),
        (["no.such.module.thing"], "cannot import 'no.such.module.thing'"),
        ([42], "dotted paths (strings), not 42"),
        (["notifications.conf.WEBSOCKET_PATH"], "neither a Django REST framework authentication class nor a callable"),
        (["notifications.ticketauth.Refused"], "neither a Django REST framework authentication class nor a callable"),
    ],
)
def test_a_bad_setting_fails_the_check(value, words):
    with override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=value):
        errors = checks.check_ticket_authentication(None)
    assert [error.id for error in errors] == ["notifications.E011"]
    assert words in errors[0].msg, errors[0].msg


@pytest.mark.parametrize("age", [0, -5, "3600", 1.5, True])
def test_a_bad_api_session_age_fails_the_check(age):
    with override_settings(NOTIFICATIONS_API_SESSION_AGE=age):
        assert [error.id for error in checks.check_ticket_authentication(None)] == ["notifications.E013"]


@modify_settings(INSTALLED_APPS={"remove": ["rest_framework.authtoken"]})
def test_drf_tokens_need_their_app():
    with override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[TOKEN]):
        assert [error.id for error in checks.check_ticket_authentication(None)] == ["notifications.E012"]
    with override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=[DRF_SESSION]):
        assert checks.check_ticket_authentication(None) == []


def test_the_supported_settings_pass_the_check():
    for value in ([TOKEN, DRF_SESSION], ["tests.test_ticket_auth.bearer_user"], ["notifications.ticketauth.session_user"]):
        with override_settings(NOTIFICATIONS_TICKET_AUTHENTICATION=value):
            assert checks.check_ticket_authentication(None) == []
