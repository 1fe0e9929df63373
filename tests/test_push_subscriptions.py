"""
Web Push on the site's side: the VAPID settings and their checks, generate_vapid_keys, the
push-subscriptions endpoint (validation, upsert, delete, CSRF, push_disabled) and the widget's
data attributes.
"""

import io
import json
from types import SimpleNamespace

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, override_settings

from notifications import checks
from notifications.models import PushSubscription
from notifications.templatetags.notifications import notifications_widget
from notifications.webpush import lifetime, subscriptions, vapid

from .factories import make_user
from .pushservice import Device, b64url

URL = "/notifications/api/push-subscriptions/"
HELD_URL = "/notifications/api/push-subscriptions/held/"
SERVICE = "https://push.example.net"
PRIVATE, PUBLIC = vapid.generate()
KEYS = {
    "NOTIFICATIONS_VAPID_PUBLIC_KEY": PUBLIC,
    "NOTIFICATIONS_VAPID_PRIVATE_KEY": PRIVATE,
    "NOTIFICATIONS_VAPID_SUBJECT": "mailto:ops@example.com",
    "NOTIFICATIONS_PUSH_SERVICES": [SERVICE, "https://*.notify.windows.com"],
}
push_on = override_settings(**KEYS)
MD5 = "django.contrib.auth.hashers.MD5PasswordHasher"
PBKDF2 = "django.contrib.auth.hashers.PBKDF2PasswordHasher"


def ids(messages):
    return [message.id for message in messages]


def client_for(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def send(client, method, body, path=URL, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return getattr(client, method)(path, data, content_type="application/json", **extra)


# Settings, checks, the key command ------------------------------------------------------------------


def test_generate_vapid_keys_prints_a_pair_the_checks_accept():
    out = io.StringIO()
    call_command("generate_vapid_keys", "--subject", "mailto:me@example.org", stdout=out)
    values = {}
    exec(out.getvalue(), {}, values)  # the lines are Python settings
    assert vapid.public_key_of(values["NOTIFICATIONS_VAPID_PRIVATE_KEY"]) == values["NOTIFICATIONS_VAPID_PUBLIC_KEY"]
    assert values["NOTIFICATIONS_VAPID_SUBJECT"] == "mailto:me@example.org"
    with override_settings(**values):
        assert checks.check_push(None) == []
    env = io.StringIO()
    call_command("generate_vapid_keys", "--env", stdout=env)
    assert [line.split("=", 1)[0] for line in env.getvalue().splitlines()] == list(KEYS)[:3]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"NOTIFICATIONS_VAPID_PUBLIC_KEY": "", "NOTIFICATIONS_VAPID_PRIVATE_KEY": ""}, []),  # push off
        ({"NOTIFICATIONS_VAPID_PRIVATE_KEY": ""}, ["notifications.E030"]),
        ({"NOTIFICATIONS_VAPID_PRIVATE_KEY": "not base64!"}, ["notifications.E030"]),
        ({"NOTIFICATIONS_VAPID_PRIVATE_KEY": b64url(b"short")}, ["notifications.E030"]),
        ({"NOTIFICATIONS_VAPID_PUBLIC_KEY": vapid.generate()[1]}, ["notifications.E030"]),  # not the pair's
        ({"NOTIFICATIONS_VAPID_SUBJECT": ""}, ["notifications.E031"]),
        ({"NOTIFICATIONS_VAPID_SUBJECT": "ops@example.com"}, ["notifications.E031"]),
        ({"NOTIFICATIONS_VAPID_SUBJECT": "https://example.com/contact"}, []),
        ({"NOTIFICATIONS_PUSH_RATE": 0}, ["notifications.E032"]),
        ({"NOTIFICATIONS_PUSH_TTL": "1d"}, ["notifications.E032"]),
        ({"NOTIFICATIONS_PUSH_SERVICES": "https://fcm.googleapis.com"}, ["notifications.E033"]),
        ({"NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT": "yes"}, ["notifications.E034"]),
        ({"NOTIFICATIONS_PUSH_SERVICES": ["https://fcm.googleapis.com/fcm/send"]}, ["notifications.E033"]),
    ],
)
def test_push_settings_checks(overrides, expected):
    with override_settings(**{**KEYS, **overrides}):
        messages = checks.check_push(None)
    assert ids(messages) == expected
    for message in messages:
        assert message.hint


def test_the_key_check_names_the_command_that_fixes_it():
    with override_settings(**{**KEYS, "NOTIFICATIONS_VAPID_PUBLIC_KEY": vapid.generate()[1]}):
        [error] = checks.check_push(None)
    assert "not the public key" in error.msg
    assert "generate_vapid_keys" in error.hint


# The endpoint ------------------------------------------------------------------------------------------

pytestmark = pytest.mark.django_db


@push_on
def test_a_device_subscribes_then_updates_then_unsubscribes():
    user = make_user()
    client = client_for(user)
    device = Device(f"{SERVICE}/send/abc")
    response = send(client, "post", device.to_json(), HTTP_USER_AGENT="Firefox on a phone")
    assert response.status_code == 201, response.content
    stored = PushSubscription.objects.get(pk=response.json()["id"])
    assert (stored.user, stored.endpoint, stored.user_agent) == (user, device.endpoint, "Firefox on a phone")
    assert (stored.p256dh, stored.auth) == (device.to_json()["keys"]["p256dh"], device.to_json()["keys"]["auth"])

    renewed = Device(device.endpoint)  # the same endpoint, new keys
    response = send(client, "post", {**renewed.to_json(), "expirationTime": 1_900_000_000_000})
    assert response.status_code == 200
    assert response.json() == {"id": stored.pk}
    stored.refresh_from_db()
    assert stored.p256dh == renewed.to_json()["keys"]["p256dh"]
    assert stored.expires_at.year == 2030

    assert send(client, "delete", {"endpoint": device.endpoint}).status_code == 204
    assert not PushSubscription.objects.exists()
    assert send(client, "delete", {"endpoint": device.endpoint}).status_code == 204  # idempotent


@push_on
def test_a_browser_another_user_subscribed_becomes_the_new_users():
    first, second = make_user(), make_user()
    device = Device(f"{SERVICE}/send/shared")
    send(client_for(first), "post", device.to_json())
    response = send(client_for(second), "post", device.to_json())
    assert response.status_code == 200
    assert list(PushSubscription.objects.values_list("user", flat=True)) == [second.pk]
    send(client_for(first), "delete", {"endpoint": device.endpoint})  # not first's any more
    assert PushSubscription.objects.count() == 1


VALID = Device(f"{SERVICE}/send/1").to_json()
OFF_CURVE = b64url(b"\x04" + b"\x01" * 64)


@push_on
@pytest.mark.parametrize(
    "body, fields",
    [
        ("not json", ["__all__"]),
        ([], ["__all__"]),
        ({}, ["endpoint", "keys"]),
        ({**VALID, "endpoint": "http://127.0.0.1:6379/", "keys": "x"}, ["endpoint", "keys"]),  # not a push service
        ({**VALID, "endpoint": "https://evil.example/send/1"}, ["endpoint"]),
        ({**VALID, "endpoint": f"{SERVICE}/" + "x" * 1100}, ["endpoint"]),
        ({**VALID, "keys": {**VALID["keys"], "p256dh": OFF_CURVE}}, ["keys"]),
        ({**VALID, "keys": {"p256dh": VALID["keys"]["p256dh"], "auth": b64url(b"a" * 15)}}, ["keys"]),
        ({**VALID, "keys": {"auth": VALID["keys"]["auth"]}}, ["keys"]),
        ({**VALID, "expirationTime": "tomorrow"}, ["expirationTime"]),
    ],
)
def test_bad_subscriptions_get_400_naming_each_field(body, fields):
    response = send(client_for(make_user()), "post", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert sorted(response.json()["errors"]) == fields
    assert not PushSubscription.objects.exists()


@push_on
def test_push_services_match_by_origin_and_wildcard_subdomain():
    client = client_for(make_user())
    for endpoint, status in [
        ("https://db5p.notify.windows.com/w/?token=1", 201),
        ("https://notify.windows.com.evil.example/w/", 400),
        ("https://push.example.net:443/send/2", 201),
        ("https://push.example.net:8443/send/3", 400),
        ("http://push.example.net/send/4", 400),
        ("https://user@push.example.net/send/5", 400),
    ]:
        assert send(client, "post", Device(endpoint).to_json()).status_code == status, endpoint


@push_on
def test_the_endpoint_needs_a_login_and_a_csrf_token():
    body = Device(f"{SERVICE}/send/1").to_json()
    assert send(Client(), "post", body).status_code == 401
    client = client_for(make_user(), enforce_csrf_checks=True)
    response = send(client, "post", body)
    assert (response.status_code, response.json()["error"]) == (403, "csrf_failed")
    client.get("/")
    assert send(client, "post", body, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value).status_code == 201
    assert client.put(URL).status_code == 405


def test_without_keys_the_endpoint_says_push_disabled():
    client = client_for(make_user())
    device = Device(f"{SERVICE}/send/1")
    for response in [send(client, "post", device.to_json()), held(client, device)]:
        assert (response.status_code, response.json()["error"]) == (404, "push_disabled")


@push_on
@pytest.mark.parametrize("endpoint", [f"{SERVICE}/send/a\x00b", f"{SERVICE}/send/a b", f"{SERVICE}/send/\u2028"])
def test_an_endpoint_with_spaces_or_control_characters_gets_400_on_every_method(endpoint):
    client = client_for(make_user())
    for response in [
        send(client, "post", {**VALID, "endpoint": endpoint}),
        send(client, "delete", {"endpoint": endpoint}),
        send(client, "post", {"endpoint": endpoint}, path=HELD_URL),
    ]:
        assert (response.status_code, list(response.json()["errors"])) == (400, ["endpoint"])
    assert not PushSubscription.objects.exists()


# A subscription lasts as long as the login that made it ------------------------------------------------


def held(client, device):
    """What the widget's page asks of the browser's subscription."""
    return send(client, "post", {"endpoint": device.endpoint}, path=HELD_URL)


@push_on
def test_the_server_says_whether_it_holds_this_browsers_subscription_for_this_user():
    owner, other = make_user(), make_user()
    device = Device(f"{SERVICE}/send/mine")
    created = send(client_for(owner), "post", device.to_json()).json()
    response = held(client_for(owner), device)
    assert (response.status_code, response.json()) == (200, created)
    response = held(client_for(other), device)  # a subscription is its user's alone
    assert (response.status_code, response.json()["error"]) == (404, "not_subscribed")
    assert held(client_for(owner), Device(f"{SERVICE}/send/unknown")).status_code == 404
    response = send(client_for(owner), "post", {}, path=HELD_URL)
    assert (response.status_code, list(response.json()["errors"])) == (400, ["endpoint"])
    assert held(Client(), device).status_code == 401
    assert client_for(owner).get(HELD_URL, {"endpoint": device.endpoint}).status_code == 405  # never in a URL


@push_on
def test_logging_out_ends_the_subscriptions_made_in_that_login_only():
    user = make_user()
    shared_computer, phone = client_for(user), client_for(user)
    left_behind = Device(f"{SERVICE}/send/shared-computer")
    kept = Device(f"{SERVICE}/send/phone")
    send(shared_computer, "post", left_behind.to_json())
    send(phone, "post", kept.to_json())

    shared_computer.logout()  # django.contrib.auth.logout, as the site's logout view calls it
    assert list(PushSubscription.objects.values_list("endpoint", flat=True)) == [kept.endpoint]
    client_for(user).logout()  # a login that made none ends none
    assert PushSubscription.objects.filter(endpoint=kept.endpoint).exists()


@push_on
def test_a_subscription_found_held_is_taken_over_by_the_new_login():
    user = make_user()
    device = Device(f"{SERVICE}/send/laptop")
    first = client_for(user)
    send(first, "post", device.to_json())  # that login's session expires without a logout
    again = client_for(user)  # a new login in the same browser: the widget's page asks
    assert held(again, device).status_code == 200
    first.logout()  # the old login no longer holds it
    assert PushSubscription.objects.exists()
    again.logout()
    assert not PushSubscription.objects.exists()


@push_on
@override_settings(NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT=False)
def test_a_site_can_keep_subscriptions_past_logout():
    client = client_for(make_user())
    send(client, "post", Device(f"{SERVICE}/send/own-phone").to_json())
    client.logout()
    assert PushSubscription.objects.exists()


@push_on
def test_a_new_password_ends_every_devices_subscription_as_it_ends_the_other_sessions():
    user, other = make_user(), make_user()
    with override_settings(PASSWORD_HASHERS=[MD5]):
        user.set_password("secret")
        user.save()
    for name in ["phone", "laptop"]:
        send(client_for(user), "post", Device(f"{SERVICE}/send/{name}").to_json())
    send(client_for(other), "post", Device(f"{SERVICE}/send/other").to_json())
    user.first_name = "Renamed"
    user.save()  # any other change ends nothing
    assert PushSubscription.objects.filter(user=user).count() == 2
    with override_settings(PASSWORD_HASHERS=[PBKDF2, MD5]):
        assert user.check_password("secret")  # a login upgrades the hash: no new password
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_")
    assert PushSubscription.objects.filter(user=user).count() == 2

    user.set_password("a new one")
    user.save()
    assert list(PushSubscription.objects.values_list("user", flat=True)) == [other.pk]


@push_on
def test_a_session_holding_no_login_id_ties_nothing_and_breaks_no_logout():
    client = client_for(make_user())
    session = client.session
    session[lifetime.SESSION_KEY] = 42  # a session from before the app gave logins an id, or tampered with
    session.save()
    assert send(client, "post", Device(f"{SERVICE}/send/odd").to_json()).status_code == 201
    client.logout()
    assert SESSION_KEY not in client.session  # logged out
    assert PushSubscription.objects.exists()  # tied to no login: it stays until the page drops it


@push_on
def test_a_database_error_at_logout_is_logged_and_does_not_stop_the_logout(caplog):
    client = client_for(make_user())
    send(client, "post", Device(f"{SERVICE}/send/during-outage").to_json())
    with connection.cursor() as cursor:  # the code deployed before `migrate`: its column is not there
        cursor.execute("ALTER TABLE notifications_pushsubscription RENAME COLUMN login_id TO login_id_to_come")
    with transaction.atomic():  # as under ATOMIC_REQUESTS: the failure must not spoil the transaction
        client.logout()
    assert SESSION_KEY not in client.session  # logged out
    assert "Could not end the push subscriptions" in caplog.text


@push_on
def test_a_subscription_stored_while_its_login_ends_does_not_stay(monkeypatch):
    """Each end lands between the request's reading of its login and its write: the worst moment."""
    user = make_user()
    with override_settings(PASSWORD_HASHERS=[MD5]):
        user.set_password("old")
        user.save()
    store = subscriptions.subscribe

    def ending(end):
        def subscribe(*args, **kwargs):
            end()
            return store(*args, **kwargs)

        return subscribe

    for name, end in [
        ("logout", lambda: lifetime.end_with_logout(None, browser_request(client), user)),
        ("password", lambda: new_password(user)),
    ]:
        client = client_for(user)
        monkeypatch.setattr(subscriptions, "subscribe", ending(end))
        response = send(client, "post", Device(f"{SERVICE}/send/{name}").to_json())
        monkeypatch.setattr(subscriptions, "subscribe", store)
        assert (response.status_code, response.json()["error"]) == (401, "not_authenticated"), name
        assert not PushSubscription.objects.exists(), name


@push_on
def test_a_subscription_taken_over_while_the_new_login_ends_does_not_stay(monkeypatch):
    user = make_user()
    device = Device(f"{SERVICE}/send/taken")
    send(client_for(user), "post", device.to_json())
    again = client_for(user)
    take_over = lifetime.take_over

    def logged_out_meanwhile(subscription, login):
        lifetime.end_with_logout(None, browser_request(again), user)
        return take_over(subscription, login)

    monkeypatch.setattr(lifetime, "take_over", logged_out_meanwhile)
    response = held(again, device)
    assert (response.status_code, response.json()["error"]) == (404, "not_subscribed")
    assert not PushSubscription.objects.exists()


def browser_request(client):
    """A request carrying the session `client` holds, as Django's logout() gets one."""
    return SimpleNamespace(session=client.session)


def new_password(user):
    fresh = type(user).objects.get(pk=user.pk)
    fresh.set_password("new")
    fresh.save()


class StaffMember(get_user_model()):
    """A proxy of the user model, as a site's admin for its staff may use to set passwords."""

    class Meta:
        proxy = True
        app_label = "auth"


@push_on
@pytest.mark.parametrize(
    "change, ends",
    [
        (lambda user: (user.set_password("new"), user.save()), True),
        (lambda user: (user.set_unusable_password(), user.save()), True),
        (lambda user: (user.set_password("new"), user.save(update_fields=["last_login"])), False),  # not saved
        (lambda user: (setattr(user, "first_name", "Renamed"), user.save(update_fields=["first_name"])), False),
    ],
)
def test_which_password_changes_end_the_subscriptions_through_a_proxy_model_too(change, ends):
    for model in [get_user_model(), StaffMember]:
        user = make_user()
        send(client_for(user), "post", Device(f"{SERVICE}/send/{user.pk}").to_json())
        change(model.objects.get(pk=user.pk))
        assert PushSubscription.objects.filter(user_id=user.pk).exists() is not ends, model


@push_on
def test_a_login_again_of_the_same_user_keeps_its_login_id_and_a_token_login_gets_none():
    user = make_user()
    client = client_for(user)
    first = client.session[lifetime.SESSION_KEY]
    client.force_login(user)  # the same user again: Django cycles the session key, keeps its data
    assert client.session[lifetime.SESSION_KEY] == first
    session = SessionStore()
    lifetime.start_login(None, SimpleNamespace(session=session), user)  # no user in the session: a token API
    assert lifetime.SESSION_KEY not in session


@push_on
def test_after_someone_else_logs_in_on_the_browser_the_server_says_it_is_not_theirs():
    first, second = make_user(), make_user()
    browser = client_for(first)
    device = Device(f"{SERVICE}/send/kiosk")
    send(browser, "post", device.to_json())
    browser.force_login(second)  # no logout: Django flushes the first user's session
    response = held(browser, device)
    assert (response.status_code, response.json()["error"]) == (404, "not_subscribed")  # the widget drops it
    assert PushSubscription.objects.get().user == first


# The widget's data attributes --------------------------------------------------------------------------


def widget_config(user):
    return dict(notifications_widget({"user": user, "csrf_token": "t"})["config"])


def test_the_widget_names_the_endpoint_and_service_worker_and_the_key_only_when_set():
    user = make_user()
    config = widget_config(user)
    assert config["push-subscriptions-url"] == URL
    assert config["push-held-url"] == HELD_URL
    assert config["service-worker-url"] == "/static/notifications/sw.js?title=New+notification"
    assert "vapid-public-key" not in config
    with push_on:
        assert widget_config(user)["vapid-public-key"] == PUBLIC


@push_on
def test_a_body_that_is_not_json_gets_400_and_one_too_large_413(settings):
    client = client_for(make_user())
    response = client.post(URL, json.dumps(VALID), content_type="text/plain")
    assert (response.status_code, list(response.json()["errors"])) == (400, ["__all__"])
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = send(client, "post", {**VALID, "padding": "x" * 200})
    assert (response.status_code, response.json()["error"]) == (413, "too_large")
    assert not PushSubscription.objects.exists()


@push_on
def test_the_admin_shows_a_device_read_only_without_its_login_id(admin_client):
    user = make_user("phone-owner")
    client = client_for(user)
    send(client, "post", Device(f"{SERVICE}/send/seen-in-admin").to_json(), HTTP_USER_AGENT="Firefox on a phone")
    subscription = PushSubscription.objects.get()
    assert subscription.login_id  # tied to the login
    page = admin_client.get(f"/admin/notifications/pushsubscription/{subscription.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Firefox on a phone" in text and "phone-owner" in text
    assert subscription.login_id not in text
    assert 'name="user_agent"' not in text  # nothing to edit
