"""
The demo site's own tests, written as any site writes them with notifications.testing: what a
page published (the `published_events` fixture), and what a user's socket receives from a real
relay (`notifications_client`), over the session or over an API token as a phone does.
"""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from notifications import mark_read, notify
from notifications.testing import captured_events
from notifications.testing.client import open_connection

User = get_user_model()


@pytest.mark.django_db
def test_the_home_page_sends_the_user_a_notification(client, published_events):
    alice = User.objects.create_user("alice", password="secret")
    bob = User.objects.create_user("bob", password="secret")
    client.force_login(alice)

    client.post("/", {"title": "Hello from the demo", "body": "sent from the form"})

    sent = published_events.assert_published(title="Hello from the demo", to=alice, count=1)
    assert sent.body == "sent from the form" and sent.actor == {"id": alice.pk, "username": "alice"}
    assert sent.topics == {"inbox"} and not sent.addressed_to(bob)


@pytest.mark.django_db
def test_an_invalid_form_publishes_nothing(client):
    client.force_login(User.objects.create_user("carol"))
    with captured_events() as published:
        response = client.post("/", {"title": ""})
    assert response.status_code == 200
    published.assert_not_published()


@pytest.mark.django_db
def test_admin_edits_are_published_to_whoever_may_view_the_model(admin_client, published_events):
    group = Group.objects.create(name="support")
    admin_client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "customer support"})
    published_events.assert_published(kind="admin.change", topic="model:auth.group", target=group)
    with pytest.raises(AssertionError, match="Expected an event matching kind='admin.deletion'"):
        published_events.assert_published(kind="admin.deletion")


@pytest.mark.django_db(transaction=True)
async def test_the_users_open_page_gets_the_notification_and_the_read_state(notifications_client):
    dave = await sync_to_async(User.objects.create_user)("dave")
    page = await notifications_client(dave)
    assert page.welcome["user"]["username"] == "dave"

    event = await sync_to_async(notify)(dave, "Your order shipped")
    assert (await page.expect_event("Your order shipped"))["topic"] == "inbox"

    await sync_to_async(mark_read)(dave, event)
    read = await page.expect("read")
    assert read["ids"] == [event.pk] and read["unread_count"] == 0


@pytest.mark.django_db(transaction=True)
async def test_a_phone_connects_with_its_api_token(notifications_relay):
    await sync_to_async(User.objects.create_user)("erin", password="secret")
    phone = Client(enforce_csrf_checks=True)  # no session, no CSRF token: only the API token
    token = (await sync_to_async(phone.post)("/api/token/", {"username": "erin", "password": "secret"})).json()["token"]
    ticket = (await sync_to_async(phone.post)("/notifications/ws-ticket/", HTTP_AUTHORIZATION=f"Token {token}")).json()["ticket"]

    socket = await open_connection(notifications_relay.url)
    try:
        await socket.send({"type": "auth", "token": ticket})
        assert (await socket.expect("welcome"))["user"]["username"] == "erin"
    finally:
        await socket.close()
