"""Web Push's parts without a relay: the message an event becomes, what a push service's answer means, who is pushed."""

import json
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from notifications import cursors, notify, preferences, publishing
from notifications.models import PushSubscription
from notifications.webpush import recipients, sending

from .factories import make_user
from .pushservice import Device


def test_the_message_is_title_body_url_id_and_nothing_else():
    event = {"id": 7, "kind": "notification", "title": "T", "body": "B", "url": "/x/", "data": {"secret": 1}, "actor": {"id": 1}}
    assert json.loads(sending.message(event)) == {"title": "T", "body": "B", "url": "/x/", "id": 7}


@pytest.mark.parametrize("char", ["a", "é", "😀", '"'])
def test_a_long_body_is_cut_to_fit_a_push_message(char):
    event = {"id": 7, "title": "T" * 255, "body": char * 10_000, "url": "/" + "u" * 499}
    encoded = sending.message(event)
    assert len(encoded) <= sending.MAX_MESSAGE
    body = json.loads(encoded)["body"]
    assert body.endswith("…") and len(body) > 500


@pytest.mark.parametrize(
    "status, kind",
    [(201, sending.DELIVERED), (202, sending.DELIVERED), (404, sending.GONE), (410, sending.GONE), (429, sending.RETRY),
     (500, sending.RETRY), (503, sending.RETRY), (400, sending.FAILED), (403, sending.FAILED), (413, sending.FAILED)],
)
def test_what_an_answer_means(status, kind):
    assert sending.outcome_of(status).kind == kind


def test_retries_honour_retry_after_then_back_off_then_give_up():
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert sending.retry_delay(sending.Outcome(sending.RETRY, 429, "7"), 1) == 7
    assert 28 <= sending.retry_delay(sending.Outcome(sending.RETRY, 503, later), 1) <= 30
    assert sending.retry_delay(sending.Outcome(sending.RETRY, 429, str(sending.MAX_RETRY_AFTER + 1)), 1) is None
    delays = [sending.retry_delay(sending.Outcome(sending.RETRY, 500), tries) for tries in range(1, sending.TRIES)]
    assert all(sending.BACKOFF_BASE * 2 ** n <= delay <= sending.BACKOFF_BASE * 2 ** n * 1.5 for n, delay in enumerate(delays))
    assert sending.retry_delay(sending.Outcome(sending.RETRY, 500), sending.TRIES) is None
    assert sending.retry_delay(sending.Outcome(sending.FAILED, 400), 1) is None


def test_routes_name_the_addressees():
    assert recipients.addressees(["inbox:user:3", "inbox:group:4", "inbox:staff", "inbox:all", "model:auth.user"]) == (
        [3], [4], ["staff", "all"],
    )
    assert recipients.addressees(["object:auth.user:3", "model:auth.user"]) == ([], [], [])


def test_an_event_read_after_its_ttl_is_not_pushed(settings):
    settings.NOTIFICATIONS_PUSH_TTL = 60
    old = int((time.time() - 61) * 1e6)
    fields = {"id": "5", "routes": '["inbox:all"]', "event": json.dumps({"id": 5, "title": "old"}), "at": str(old)}
    plan = recipients.plan(fields)  # no query and no Redis: it stops before either
    assert plan.deliveries == [] and plan.event_id == 5


@pytest.mark.django_db
def test_a_plan_looks_addressees_up_a_thousand_at_a_time(settings, monkeypatch, django_assert_num_queries):
    settings.NOTIFICATIONS_PUSH_SERVICES = ["https://push.example.net"]
    monkeypatch.setattr(recipients, "USERS_AT_ONCE", 2)
    users = [make_user() for _ in range(5)]
    for n, user in enumerate(users):
        keys = Device("unused").to_json()["keys"]
        PushSubscription.objects.create(user=user, endpoint=f"https://push.example.net/{n}", p256dh=keys["p256dh"], auth=keys["auth"])
    preferences.update(users[1], {"push": False}, partial=True)
    event = notify(users, "To five")
    published = publishing.message(event, publishing.stored_routes(event))
    fields = {"id": str(event.pk), "routes": published.routes, "event": published.payload, "at": str(cursors.epoch_us(event.created_at))}

    with django_assert_num_queries(1 + 3):  # the subscriptions, then the preferences of 2 + 2 + 1 users
        plan = recipients.plan(fields)

    assert sorted(each.user_id for each in plan.deliveries) == sorted(user.pk for user in users if user != users[1])
    assert plan.skipped == {"push_off": 1}
