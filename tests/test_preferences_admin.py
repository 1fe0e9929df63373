"""
The admin's "Notification preferences": what each user chose and what applies to them, found by
username and filtered by channel; a change saved there is validated as over HTTP and told to the
relays after commit, like one made through the API.
"""

import json

import pytest
from django.test import Client, override_settings

from notifications import preferences
from notifications.models import Preferences

from .factories import make_user

CHANGELIST = "/admin/notifications/preferences/"
ADD = f"{CHANGELIST}add/"
transactional = pytest.mark.django_db(transaction=True)


def admin_client():
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def change_url(user):
    return f"{CHANGELIST}{user.pk}/change/"


def form(**fields):
    """A change form's POST: every field left to the site's default unless given."""
    return {"toasts": "unknown", "digest": "", "push": "unknown", "language": "", "muted_kinds": "", "muted_topics": "", **fields}


def page(response):
    assert response.status_code == 200, response.content
    return response.content.decode()


@pytest.mark.django_db
def test_the_changelist_shows_what_applies_and_finds_users_by_username():
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    preferences.update(alice, {"digest": "daily", "toasts": False, "muted_kinds": ["model.updated"]})
    preferences.update(bob, {"push": False})
    preferences.update(carol, {"digest": "weekly", "toasts": True})
    client = admin_client()

    listing = page(client.get(CHANGELIST))
    assert alice.username in listing and bob.username in listing
    assert "Daily" in listing and "Off (site default)" in listing  # chosen, and the default applied
    assert "model.updated" in listing

    def found(**query):
        return sorted(row.user.username for row in client.get(CHANGELIST, query).context["cl"].result_list)

    assert found(q=alice.username) == [alice.username]
    assert found(digest="daily") == [alice.username]
    assert found(digest="default") == [bob.username]
    assert found(toasts="no") == [alice.username]
    assert found(toasts="yes") == [carol.username]
    assert found(toasts="default") == [bob.username]
    assert found(push="no") == [bob.username]
    assert found(push="default") == sorted([alice.username, carol.username])


@pytest.mark.django_db
@override_settings(NOTIFICATIONS_PREFERENCES={"digest": "weekly"})
def test_the_change_page_shows_the_choices_and_the_site_defaults_under_them():
    user = make_user()
    preferences.update(user, {"toasts": False, "muted_topics": ["model:auth.group"]})
    content = page(admin_client().get(change_url(user)))
    assert "What applies now" in content
    assert "Toasts: No</li>" in content
    assert "Email digest: Weekly (site default)</li>" in content
    assert "Muted topics: model:auth.group</li>" in content
    assert "Site default (Weekly)" in content and "Site default (Yes)" in content  # the empty choices, named
    assert "Updated at" in content


@transactional
def test_saving_in_the_admin_stores_through_the_api_and_tells_the_relays(control_stream):
    user = make_user()
    preferences.update(user, {"push": False})
    control_stream.mark()
    response = admin_client().post(
        change_url(user), form(toasts="false", digest="hourly", muted_topics='["model:auth.Group"]', muted_kinds="[]")
    )
    assert response.status_code == 302, response.content
    expected = {
        "toasts": False,
        "digest": "hourly",
        "push": True,
        "language": "",
        "muted_kinds": [],
        "muted_topics": ["model:auth.group"],
    }
    assert preferences.choices_for(user).as_json() == expected  # push left to the default again, the topic made canonical
    [message] = control_stream.preferences_messages()
    assert message["preferences"] == str(user.pk)
    assert json.loads(message["frame"]) == {"type": "preferences", "preferences": expected}


@transactional
def test_invalid_choices_in_the_admin_are_shown_on_their_fields_and_nothing_changes(control_stream):
    user = make_user()
    response = admin_client().post(ADD, form(user=user.pk, muted_kinds='["Not A Kind"]', muted_topics='["inbox"]', language="xx"))
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"muted_kinds", "muted_topics", "language"}
    assert "cannot be muted" in errors["muted_topics"][0]
    assert not Preferences.objects.exists()
    assert control_stream.preferences_messages() == []


@transactional
def test_adding_preferences_for_a_user_once(control_stream):
    user = make_user()
    client = admin_client()
    assert "Site default (Off)" in page(client.get(ADD))
    assert client.post(ADD, form(user=user.pk, digest="weekly")).status_code == 302
    assert preferences.choices_for(user).digest == "weekly"
    assert [message["preferences"] for message in control_stream.preferences_messages()] == [str(user.pk)]
    again = client.post(ADD, form(user=user.pk, digest="daily"))
    assert "user" in again.context["adminform"].form.errors
    assert preferences.choices_for(user).digest == "weekly"


@transactional
def test_deleting_preferences_tells_the_relays_the_defaults(control_stream):
    user = make_user()
    preferences.update(user, {"toasts": False})
    control_stream.mark()
    response = admin_client().post(f"{change_url(user)[: -len('change/')]}delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Preferences.objects.exists()
    [message] = control_stream.preferences_messages()
    assert json.loads(message["frame"])["preferences"] == preferences.applied(None).as_json()


@transactional
def test_deleting_in_bulk_tells_the_relays_of_each_user(control_stream):
    users = [make_user() for _ in range(3)]
    for user in users:
        preferences.update(user, {"push": False})
    control_stream.mark()
    chosen = [str(user.pk) for user in users[:2]]
    response = admin_client().post(CHANGELIST, {"action": "delete_selected", "_selected_action": chosen, "post": "yes"})
    assert response.status_code == 302
    assert sorted(Preferences.objects.values_list("user_id", flat=True)) == [users[2].pk]
    messages = control_stream.preferences_messages()
    assert sorted(message["preferences"] for message in messages) == sorted(chosen)
    assert all(json.loads(message["frame"])["preferences"]["push"] is True for message in messages)
