"""
Notification preferences over HTTP (GET, PUT, PATCH at /notifications/api/preferences/): the
site's defaults and a user's choices over them, each validation error as JSON 400 naming its
field, CSRF and authentication as the other API views; the control message that tells the
relays after commit (read from the suite's real Redis); the feed's `muted` flag and its cost.
"""

import json

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from notifications import announce, checks, notify, preferences
from notifications.models import Preferences

from .browser.test_template_tag import data_attributes, render
from .factories import make_user

pytestmark = pytest.mark.django_db

URL = "/notifications/api/preferences/"
LIST = "/notifications/api/notifications/"
BUILT_IN = {"toasts": True, "digest": "off", "push": True, "language": "", "muted_kinds": [], "muted_topics": []}
NOTHING_CHOSEN = dict.fromkeys(BUILT_IN)


def client_for(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def send(client, method, data, content_type="application/json", **extra):
    body = data if isinstance(data, (str, bytes)) else json.dumps(data)
    # CONTENT_TYPE again: the test client sends none with an empty body.
    return getattr(client, method)(URL, body, content_type=content_type, CONTENT_TYPE=content_type, **extra)


def ok(response):
    assert response.status_code == 200, response.content
    return response.json()


# Reading and changing them --------------------------------------------------------------------------


def test_a_user_who_chose_nothing_gets_the_sites_defaults_and_the_options():
    body = ok(client_for(make_user()).get(URL))
    assert body["preferences"] == BUILT_IN
    assert body["chosen"] == NOTHING_CHOSEN
    assert body["defaults"] == BUILT_IN
    assert body["options"]["digest"] == [
        {"value": "off", "label": "Off"},
        {"value": "hourly", "label": "Hourly"},
        {"value": "daily", "label": "Daily"},
        {"value": "weekly", "label": "Weekly"},
    ]
    assert {"code": "en", "name": "English"} in body["options"]["languages"]
    assert {"code": "fr", "name": "Français"} in body["options"]["languages"]  # each in its own words (project/settings.py)
    assert not Preferences.objects.exists()  # reading stores nothing


@override_settings(LANGUAGES=[("en", "English"), ("de", "German")])
def test_the_languages_offered_are_the_sites():
    assert ok(client_for(make_user()).get(URL))["options"]["languages"] == [
        {"code": "en", "name": "English"},
        {"code": "de", "name": "German"},
    ]


def test_put_sets_every_field_and_get_reads_them_back():
    user = make_user()
    client = client_for(user)
    chosen = {
        "toasts": False,
        "digest": "daily",
        "push": False,
        "language": "fr",
        "muted_kinds": ["model.updated", "admin.change", "model.updated"],
        "muted_topics": ["model:auth.Group", "object:auth.user:05"],
    }
    body = ok(send(client, "put", chosen))
    expected = {
        **chosen,
        "muted_kinds": ["model.updated", "admin.change"],
        "muted_topics": ["model:auth.group", "object:auth.user:5"],
    }
    assert body["preferences"] == expected  # stored in their canonical form, once each
    assert body["chosen"] == expected
    assert ok(client.get(URL)) == body
    assert preferences.choices_for(user).as_json() == expected

    # PUT again: what it leaves out follows the site's defaults again.
    body = ok(send(client, "put", {"digest": "weekly", "muted_kinds": None}))
    assert body["chosen"] == {**NOTHING_CHOSEN, "digest": "weekly"}
    assert body["preferences"] == {**BUILT_IN, "digest": "weekly"}


def test_patch_changes_only_the_fields_it_names():
    client = client_for(make_user())
    ok(send(client, "put", {"toasts": False, "muted_kinds": ["announcement"]}))
    body = ok(send(client, "patch", {"push": False}))
    assert body["chosen"] == {**NOTHING_CHOSEN, "toasts": False, "push": False, "muted_kinds": ["announcement"]}
    body = ok(send(client, "patch", {"toasts": None, "muted_kinds": []}))  # null: back to the default; []: nothing muted
    assert body["chosen"] == {**NOTHING_CHOSEN, "push": False, "muted_kinds": []}
    assert body["preferences"] == {**BUILT_IN, "push": False}
    assert ok(send(client, "patch", {}))["chosen"] == body["chosen"]


def test_a_users_choices_are_their_own():
    alice, bob = make_user("alice"), make_user("bob")
    ok(send(client_for(alice), "put", {"toasts": False}))
    assert ok(client_for(bob).get(URL))["preferences"] == BUILT_IN


# The site's defaults ---------------------------------------------------------------------------------

SITE = {"digest": "weekly", "toasts": False, "muted_kinds": ("model.updated",)}


@override_settings(NOTIFICATIONS_PREFERENCES=SITE)
def test_the_sites_defaults_apply_to_what_a_user_left_unset():
    client = client_for(make_user())
    site = {**BUILT_IN, "digest": "weekly", "toasts": False, "muted_kinds": ["model.updated"]}
    body = ok(client.get(URL))
    assert body["preferences"] == site and body["defaults"] == site and body["chosen"] == NOTHING_CHOSEN

    body = ok(send(client, "patch", {"toasts": True, "muted_kinds": []}))  # overridden by the user's own
    assert body["preferences"] == {**site, "toasts": True, "muted_kinds": []}
    assert body["defaults"] == site

    # A default changed later reaches whoever never chose that field, and no one else.
    with override_settings(NOTIFICATIONS_PREFERENCES={**SITE, "digest": "daily", "toasts": False}):
        assert ok(client.get(URL))["preferences"] == {**site, "digest": "daily", "toasts": True, "muted_kinds": []}


# Validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("toasts", "yes", "true, false or null"),
        ("toasts", 1, "true, false or null"),
        ("push", "false", "true, false or null"),
        ("digest", "monthly", "off, hourly, daily, weekly"),
        ("digest", ["daily"], "off, hourly, daily, weekly"),
        ("language", "xx-nowhere", "site's languages"),
        ("language", 7, "site's languages"),
        ("muted_kinds", "model.updated", "a list"),
        ("muted_kinds", ["Model Updated"], "is not a kind"),
        ("muted_kinds", [3], "is not a kind"),
        ("muted_kinds", ["k"] * (preferences.MAX_MUTES + 1), f"At most {preferences.MAX_MUTES}"),
        ("muted_topics", {"model:auth.group": True}, "a list"),
        ("muted_topics", ["inbox"], "cannot be muted"),
        ("muted_topics", ["model:*"], "cannot be muted"),
        ("muted_topics", ["model:nowhere.nothing"], "no model"),
        ("muted_topics", ["object:auth.user:abc"], "not a valid User key"),
        ("muted_topics", [None], "non-empty string"),
        ("colour", "red", "Unknown preference"),
    ],
)
@pytest.mark.parametrize("method", ["put", "patch"])
def test_each_invalid_field_is_a_json_400_naming_it(method, field, value, says):
    user = make_user()
    response = send(client_for(user), method, {field: value})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert list(body["errors"]) == [field]
    assert says in " ".join(body["errors"][field])
    assert field in body["message"]
    assert not Preferences.objects.filter(user_id=user.pk).exists()  # nothing stored


def test_every_invalid_field_is_named_at_once_and_nothing_is_changed():
    user = make_user()
    client = client_for(user)
    ok(send(client, "put", {"push": False}))
    response = send(client, "patch", {"toasts": "no", "digest": "sometimes", "push": True, "extra": 1})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"toasts", "digest", "extra"}
    assert ok(client.get(URL))["chosen"]["push"] is False  # the valid field was not applied either


@pytest.mark.parametrize(
    "body, content_type, says",
    [
        ("{", "application/json", "not valid JSON"),
        ("", "application/json", "not valid JSON"),
        (b"\xff\xfe{", "application/json", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "application/json", "not valid JSON"),
        ("[]", "application/json", "JSON object"),
        ('"toasts"', "application/json", "JSON object"),
        ("null", "application/json", "JSON object"),
        ("toasts=false", "application/x-www-form-urlencoded", "application/json"),
        ('{"toasts": false}', "text/plain", "application/json, not 'text/plain'"),
        ('{"toasts": false}', "", "with a Content-Type header"),
    ],
)
def test_a_body_that_is_no_json_object_is_a_json_400(body, content_type, says):
    response = send(client_for(make_user()), "put", body, content_type=content_type)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    assert list(response.json()["errors"]) == ["__all__"]
    assert says in response.json()["message"]


def test_a_charset_parameter_is_fine():
    response = send(client_for(make_user()), "patch", {"toasts": False}, content_type="application/json; charset=utf-8")
    assert ok(response)["preferences"]["toasts"] is False


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_too_large_is_a_json_413():
    response = send(client_for(make_user()), "put", {"muted_kinds": ["model.updated"] * 100})
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


# HTTP behaviour ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "patch"])
def test_anonymous_users_get_json_401(method):
    response = Client().get(URL) if method == "get" else send(Client(), method, {"toasts": False})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_changes_need_the_csrf_token(method):
    user = make_user()
    client = client_for(user, enforce_csrf_checks=True)
    assert ok(client.get(URL))  # reading needs none
    response = send(client, method, {"toasts": False})
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"
    assert not Preferences.objects.filter(user_id=user.pk).exists()
    client.get("/")  # a page that renders the token sets the CSRF cookie, as the widget's page does
    token = client.cookies["csrftoken"].value
    assert ok(send(client, method, {"toasts": False}, HTTP_X_CSRFTOKEN=token))["chosen"]["toasts"] is False


@pytest.mark.parametrize("method", ["post", "delete"])
def test_other_methods_get_json_405(method):
    response = getattr(client_for(make_user()), method)(URL)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response["Allow"] == "GET, PUT, PATCH"


def test_answers_are_never_cached():
    response = client_for(make_user()).get(URL)
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_the_widget_is_told_where_the_preferences_are():
    assert data_attributes(render(make_user()))["preferences-url"] == URL


# Telling the relays -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_change_is_put_on_the_control_stream_after_commit(control_stream):
    user = make_user()
    with transaction.atomic():
        choices = preferences.update(user, {"toasts": False, "muted_topics": ["model:auth.Group"]})
        assert control_stream.preferences_messages() == []  # not before the commit
    [message] = control_stream.preferences_messages()
    assert message["preferences"] == str(user.pk)
    assert json.loads(message["frame"]) == {"type": "preferences", "preferences": choices.as_json()}
    assert json.loads(message["frame"])["preferences"] == {**BUILT_IN, "toasts": False, "muted_topics": ["model:auth.group"]}
    assert preferences.reader_from_frame(message["frame"]).mutes == preferences.Mutes(topics=frozenset({"model:auth.group"}))


@pytest.mark.django_db(transaction=True)
def test_a_change_over_http_is_put_on_the_control_stream(control_stream):
    user = make_user()
    body = ok(send(client_for(user), "patch", {"digest": "hourly"}))
    [message] = control_stream.preferences_messages()
    assert message["preferences"] == str(user.pk)
    assert json.loads(message["frame"]) == {"type": "preferences", "preferences": body["preferences"]}


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_or_refused_change_sends_nothing(control_stream):
    user = make_user()
    with transaction.atomic():
        preferences.update(user, {"toasts": False})
        transaction.set_rollback(True)
    assert send(client_for(user), "put", {"toasts": "off"}).status_code == 400
    assert control_stream.preferences_messages() == []
    assert not Preferences.objects.filter(user_id=user.pk).exists()


# The feed's `muted` flag --------------------------------------------------------------------------


def muted_flags(client):
    return {item["title"]: item["muted"] for item in ok(client.get(LIST))["results"]}


def test_feed_items_say_whether_they_are_muted_and_stay_in_the_feed():
    user = make_user()
    muted_group, other_group = Group.objects.create(name="muted"), Group.objects.create(name="other")
    client = client_for(user)
    notify(user, "plain")
    notify(user, "about the muted group", target=muted_group)
    notify(user, "about another group", target=other_group)
    announce("announced")
    assert set(muted_flags(client).values()) == {False}

    ok(send(client, "put", {"muted_kinds": ["announcement"], "muted_topics": [f"object:auth.group:{muted_group.pk}"]}))
    assert muted_flags(client) == {
        "plain": False,
        "about the muted group": True,
        "about another group": False,
        "announced": True,
    }
    ok(send(client, "put", {"muted_topics": ["model:auth.group"]}))  # the whole model
    assert muted_flags(client) == {"plain": False, "about the muted group": True, "about another group": True, "announced": False}


@override_settings(NOTIFICATIONS_PREFERENCES={"muted_kinds": ["notification"]})
def test_the_feed_follows_the_sites_default_mutes():
    user = make_user()
    notify(user, "muted by the site")
    assert muted_flags(client_for(user)) == {"muted by the site": True}


def test_the_muted_flag_costs_one_query_whatever_the_number_of_items():
    user = make_user(perms=["auth.view_group"])
    actor = make_user("actor")
    client = client_for(user)
    ok(send(client, "put", {"muted_kinds": ["admin.change"], "muted_topics": ["model:auth.group"]}))
    notify(user, "seed", actor=actor, target=Group.objects.create(name=f"seed-{user.pk}"))

    def queries():
        with CaptureQueriesContext(connection) as captured:
            results = ok(client.get(LIST, {"limit": 50}))["results"]
        assert len([query for query in captured if "notifications_preferences" in query["sql"]]) == 1
        return len(captured), results

    few, results = queries()
    assert [item["muted"] for item in results] == [True]
    for n in range(30):
        notify(user, f"n{n}", actor=actor, target=Group.objects.create(name=f"g{n}-{user.pk}"))
    many, results = queries()
    assert len(results) == 31 and all(item["muted"] for item in results)
    assert many == few


# The site's defaults, checked -------------------------------------------------------------------------


def preference_problems():
    return [(message.id, message.msg, message.hint) for message in checks.check_preferences(None)]


@pytest.mark.parametrize(
    "defaults",
    [
        {},
        {"toasts": False, "digest": "weekly", "push": False, "language": "fr"},
        {
            "language": "",
            "muted_kinds": ("model.updated", "admin.change"),
            "muted_topics": ["model:auth.group", "object:auth.user:5"],
        },
    ],
)
def test_good_site_defaults_pass_the_check(defaults):
    with override_settings(NOTIFICATIONS_PREFERENCES=defaults):
        assert preference_problems() == []


@pytest.mark.parametrize(
    "defaults, field, says, fix",
    [
        ({"toasts": "yes"}, "toasts", "true, false or null", "True or False"),
        ({"digest": "monthly"}, "digest", "off, hourly, daily, weekly", "'off', 'hourly', 'daily', 'weekly'"),
        ({"push": None}, "push", "cannot be a default", "True or False"),
        ({"language": "xx-nowhere"}, "language", "site's languages", "a code of LANGUAGES"),
        ({"muted_kinds": "model.updated"}, "muted_kinds", "a list", "['model.updated']"),
        ({"muted_topics": ["inbox"]}, "muted_topics", "cannot be muted", "'model:shop.order'"),
        ({"muted_topics": ["model:auth.User"]}, "muted_topics", "Write ['model:auth.user']", "list of model or object topics"),
        ({"muted_kinds": ["model.updated", "model.updated"]}, "muted_kinds", "Write ['model.updated']", "list of event kinds"),
        ({"digests": "daily"}, "digests", "Unknown preference", "Remove 'digests'"),
    ],
)
def test_each_bad_site_default_is_an_error_naming_it_and_the_fix(defaults, field, says, fix):
    with override_settings(NOTIFICATIONS_PREFERENCES=defaults):
        [(check_id, message, hint)] = preference_problems()
    assert check_id == "notifications.E014"
    assert message.startswith(f"NOTIFICATIONS_PREFERENCES[{field!r}]: ")
    assert says in message
    assert fix in hint


def test_site_defaults_that_are_no_dict_are_an_error():
    with override_settings(NOTIFICATIONS_PREFERENCES=["digest", "daily"]):
        [(check_id, message, hint)] = preference_problems()
    assert check_id == "notifications.E014" and "must be a dict" in message and "{'digest': 'daily'" in hint


def test_every_bad_site_default_is_named():
    with override_settings(NOTIFICATIONS_PREFERENCES={"toasts": 1, "digest": None, "colour": "red"}):
        assert sorted(message for _, message, _ in preference_problems()) == [
            "NOTIFICATIONS_PREFERENCES['colour']: Unknown preference 'colour'; known: toasts, digest, push, language, muted_kinds, muted_topics.",
            "NOTIFICATIONS_PREFERENCES['digest']: None cannot be a default (nothing lies under it): give a value, or leave the key out.",
            "NOTIFICATIONS_PREFERENCES['toasts']: Expected true, false or null (the site's default).",
        ]
