"""
Either Redis cache backend, or a Redis URL of the app's own, carries the events: publishing,
tickets, control messages and a relay all work with Django's built-in RedisCache, with
django-redis, and with NOTIFICATIONS_REDIS_URL beside a cache that is not Redis at all.
"""

import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings

from notifications import notify, redisconf
from notifications.checks import check_redis
from notifications.tickets import check_ticket, issue_ticket

from .aio import call
from .factories import login, make_user

URL = settings.CACHES["default"]["LOCATION"]
CHOICES = {
    "django-redis": {"CACHES": {"default": {**settings.CACHES["default"], "LOCATION": URL}}},
    "django": {
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": URL,
                "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
            }
        }
    },
    "url": {
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        "NOTIFICATIONS_REDIS_URL": URL,
    },
}


@pytest.fixture(params=list(CHOICES))
def choice(request):
    with override_settings(**CHOICES[request.param]):
        yield request.param


@pytest.mark.django_db(transaction=True)
def test_events_and_tickets_travel_through_each_choice(choice, stream):
    user = make_user()
    event = notify(user, f"through {choice}")
    assert [(each["id"], each["title"]) for each in stream.new_events()] == [(event.pk, f"through {choice}")]
    assert redisconf.url() == URL and check_redis(None) == []

    request = RequestFactory().get("/")
    request.user = user
    request.session = login(user).client.session
    checked, session_key = check_ticket(issue_ticket(request))
    assert checked.user == user and session_key == request.session.session_key


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"CACHES": CHOICES["url"]["CACHES"]}, "notifications.E001"),
        ({**CHOICES["url"], "NOTIFICATIONS_REDIS_URL": "http://127.0.0.1:6379/0"}, "notifications.E007"),
    ],
    ids=["no Redis at all", "not a Redis URL"],
)
def test_the_check_explains_the_choice(overrides, expected):
    with override_settings(**overrides):
        [error] = check_redis(None)
    assert error.id == expected
    if expected == "notifications.E001":
        assert "NOTIFICATIONS_REDIS_URL" in error.hint and redisconf.DJANGO_BACKEND in error.hint
        assert redisconf.DJANGO_REDIS_BACKEND in error.hint


@pytest.mark.parametrize("redis_choice", ["django", "url"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_orm_thread_connection")
async def test_a_relay_reads_through_each_choice(relay_factory, ws_clients, redis_choice):
    relay = await call(relay_factory, settings_module="tests.settings_redis_choice", extra_env={"REDIS_CHOICE": redis_choice})
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    with override_settings(**CHOICES[redis_choice]):
        await call(notify, user, f"relayed through {redis_choice}")
    await client.expect_event(f"relayed through {redis_choice}")
