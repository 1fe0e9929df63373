"""
Web Push end to end: real relay processes with VAPID keys push inbox events to a real HTTP push
service on 127.0.0.1 (tests/pushservice.py), which decrypts each message with the device's keys
and checks its VAPID token against the site's public key.

A push that must NOT happen is proved by the stream entry being acknowledged by the relays'
consumer group (settled()): the relay has decided about it, and the POST would have come first.
"""

import asyncio
import json
import re
import time
import urllib.request

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import override_settings

from notifications import announce, notify, online, preferences, redisaddress, redisconf
from notifications.models import PushSubscription
from notifications.webpush import vapid
from wsserver import bus
from wsserver.push import CLAIM_IDLE_MS, GROUP, PushSender

from . import redis_deployments
from .aio import call, live_servers
from .factories import login, make_group, make_user
from .pushservice import PushService, verify_vapid

pytestmark = live_servers

PRIVATE, PUBLIC = vapid.generate()
SUBJECT = "mailto:push-tests@example.com"
SETTLE_TIMEOUT = 15.0


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def redis():
    client = redisaddress.client(redisconf.url(), decode_responses=True)
    yield client
    client.close()


def group_exists(redis):
    try:
        return any(group["name"] == GROUP for group in redis.xinfo_groups(redisconf.stream_key()))
    except Exception:  # no stream yet
        return False


@pytest.fixture
def push_relays(relay_factory, push_service, redis):
    """start(**env) starts a relay that pushes to the test's push service; the consumer group starts afresh for each test."""
    if group_exists(redis):
        redis.xgroup_destroy(redisconf.stream_key(), GROUP)
    site = override_settings(
        NOTIFICATIONS_VAPID_PUBLIC_KEY=PUBLIC,
        NOTIFICATIONS_VAPID_PRIVATE_KEY=PRIVATE,
        NOTIFICATIONS_VAPID_SUBJECT=SUBJECT,
        NOTIFICATIONS_PUSH_SERVICES=[push_service.origin],
    )
    site.enable()

    def start(through=redis, **env):
        """A relay pushing to the test's service; `through`: a client of the Redis it reads, when not the test run's."""
        started = relay_factory(
            settings_module="tests.settings_push",
            extra_env={
                "NOTIFICATIONS_VAPID_PUBLIC_KEY": PUBLIC,
                "NOTIFICATIONS_VAPID_PRIVATE_KEY": PRIVATE,
                "NOTIFICATIONS_VAPID_SUBJECT": SUBJECT,
                "NOTIFICATIONS_PUSH_SERVICES": json.dumps([push_service.origin]),
                **env,
            },
        )
        wait_for(lambda: group_exists(through), "the relay's consumer group")
        return started

    yield start
    site.disable()


def wait_for(condition, what, timeout=SETTLE_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"Not within {timeout} s: {what}"
        time.sleep(0.05)


def settled(redis):
    """Wait until the relays have taken and acknowledged every entry of the stream."""
    key = redisconf.stream_key()

    def done():
        newest = redis.xrevrange(key, count=1)
        [group] = [each for each in redis.xinfo_groups(key) if each["name"] == GROUP]
        return group["pending"] == 0 and (not newest or group["last-delivered-id"] == newest[0][0])

    wait_for(done, "every stream entry pushed and acknowledged")


def subscribe(user, device):
    """Subscribe a device as the widget does: POST its PushSubscription.toJSON() with the user's session."""
    response = login(user).client.post(
        "/notifications/api/push-subscriptions/", json.dumps(device.to_json()), content_type="application/json", HTTP_USER_AGENT="Test browser"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def metric(relay, name):
    """{label value: count} of a counter on the relay's /metrics (its operations address)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{relay.ops_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(rf'^{name}_total{{\w+="(\w+)"}} ([0-9.]+)$', text, re.MULTILINE)
    return {label: float(value) for label, value in found}


def message(received, device):
    return json.loads(device.decrypt(received.body))


def subscription(pk):
    return PushSubscription.objects.filter(pk=pk).first()


# What is pushed, and how -------------------------------------------------------------------------


async def test_an_event_for_a_user_with_no_socket_is_pushed_encrypted_and_signed(push_relays, push_service):
    await call(push_relays)
    user = await call(make_user)
    device = push_service.device("alice-phone")
    pk = await call(subscribe, user, device)

    event = await call(notify, user, "Your export is ready", body="42 rows", url="/exports/42/", data={"token": "secret"})

    [received] = await asyncio.to_thread(push_service.wait_for, device, 1)
    assert message(received, device) == {"title": "Your export is ready", "body": "42 rows", "url": "/exports/42/", "id": event.pk}
    headers = received.headers
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["ttl"] == str(24 * 3600)
    assert headers["urgency"] == "normal"
    assert headers["topic"] == f"event-{event.pk}"
    assert b"secret" not in received.body and b"export" not in received.body
    claims = verify_vapid(headers["authorization"], PUBLIC, push_service.origin)
    assert claims["sub"] == SUBJECT
    await asyncio.to_thread(wait_for, lambda: subscription(pk).last_success_at is not None, "the success recorded")


async def test_groups_and_announcements_reach_their_members_devices_and_announcements_are_low_urgency(push_relays, push_service, redis):
    await call(push_relays)
    member, outsider, staff = await call(make_user), await call(make_user), await call(make_user, staff=True)
    group = await call(make_group, members=[member])
    devices = {name: push_service.device(name) for name in ("member", "outsider", "staff")}
    for user, name in [(member, "member"), (outsider, "outsider"), (staff, "staff")]:
        await call(subscribe, user, devices[name])

    to_group = await call(notify, group, "For the group")
    to_staff = await call(announce, "For staff", audience="staff")
    await asyncio.to_thread(settled, redis)

    assert [message(r, devices["member"])["id"] for r in push_service.to(devices["member"])] == [to_group.pk]
    assert push_service.to(devices["outsider"]) == []
    [received] = push_service.to(devices["staff"])
    assert message(received, devices["staff"])["id"] == to_staff.pk
    assert received.headers["urgency"] == "low"


async def test_a_user_with_a_socket_open_is_not_pushed_until_it_closes(push_relays, push_service, redis, ws_clients):
    relay = await call(push_relays)
    user = await call(make_user)
    device = push_service.device("desk")
    await call(subscribe, user, device)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))
    await asyncio.to_thread(wait_for, lambda: online.connected_users([user.pk]) == {user.pk}, "the user online")

    await call(notify, user, "Seen on the page")
    await client.expect_event("Seen on the page")
    await asyncio.to_thread(settled, redis)
    assert push_service.to(device) == []

    await client.close()
    await asyncio.to_thread(wait_for, lambda: not online.connected_users([user.pk]), "the user offline")
    event = await call(notify, user, "Away now")
    [received] = await asyncio.to_thread(push_service.wait_for, device, 1)
    assert message(received, device)["id"] == event.pk


async def test_push_off_or_muted_is_not_pushed(push_relays, push_service, redis):
    await call(push_relays)
    push_off, muted, muted_topic, wants = [await call(make_user) for _ in range(4)]
    other = await call(make_user)
    devices = [push_service.device(f"d{n}") for n in range(4)]
    for user, device in zip([push_off, muted, muted_topic, wants], devices):
        await call(subscribe, user, device)
    await call(preferences.update, push_off, {"push": False}, True)
    await call(preferences.update, muted, {"muted_kinds": ["notification"]}, True)
    await call(preferences.update, muted_topic, {"muted_topics": [f"object:auth.user:{other.pk}"]}, True)

    event = await call(notify, [push_off, muted, muted_topic, wants], "About someone", target=other)
    await asyncio.to_thread(settled, redis)

    assert [len(push_service.to(device)) for device in devices] == [0, 0, 0, 1]
    assert message(push_service.to(devices[3])[0], devices[3])["id"] == event.pk


async def test_object_events_are_not_pushed(push_relays, push_service, redis):
    await call(push_relays)
    watcher = await call(make_user, superuser=True)
    device = push_service.device("watcher")
    await call(subscribe, watcher, device)
    root = await call(make_user, superuser=True)
    group = await call(make_group)
    await call(LogEntry.objects.log_actions, root.pk, [group], CHANGE, change_message="x")
    await asyncio.to_thread(settled, redis)
    assert push_service.to(device) == []


async def test_no_push_goes_to_a_service_not_on_the_list_any_more(push_relays, push_service, redis):
    await call(push_relays)
    user = await call(make_user)
    removed = PushService()  # a service the site no longer sends to, with a device subscribed before
    try:
        device = removed.device("before")
        keys = device.to_json()["keys"]
        await call(PushSubscription.objects.create, user=user, endpoint=device.endpoint, p256dh=keys["p256dh"], auth=keys["auth"])
        listed = push_service.device("listed")
        await call(subscribe, user, listed)

        await call(notify, user, "Only where allowed")
        await asyncio.to_thread(settled, redis)
        assert removed.to(device) == [] and len(push_service.to(listed)) == 1
    finally:
        removed.close()


# What the push service answers -------------------------------------------------------------------


async def test_a_gone_subscription_is_deleted(push_relays, push_service):
    await call(push_relays)
    user = await call(make_user)
    device = push_service.device("old-laptop")
    pk = await call(subscribe, user, device)
    push_service.respond("/push/old-laptop", [(410, None)])

    await call(notify, user, "Anyone there?")
    await asyncio.to_thread(push_service.wait_for, device, 1)
    await asyncio.to_thread(wait_for, lambda: subscription(pk) is None, "the subscription deleted")


async def test_429_and_5xx_are_tried_again_honouring_retry_after(push_relays, push_service):
    await call(push_relays)
    user = await call(make_user)
    busy, failing = push_service.device("busy"), push_service.device("failing")
    await call(subscribe, user, busy)
    pk = await call(subscribe, user, failing)
    push_service.respond("/push/busy", [(429, 2)])
    push_service.respond("/push/failing", [(500, None), (503, None)])

    event = await call(notify, user, "Eventually")
    first, second = await asyncio.to_thread(push_service.wait_for, busy, 2)
    assert second.at - first.at >= 1.9  # Retry-After: 2
    attempts = await asyncio.to_thread(push_service.wait_for, failing, 3)
    assert [each.status for each in attempts] == [500, 503, 201]
    assert {message(each, failing)["id"] for each in attempts} == {event.pk}
    await asyncio.to_thread(wait_for, lambda: subscription(pk).last_success_at is not None, "the success recorded")
    await asyncio.sleep(1)
    assert len(push_service.to(busy)) == 2 and len(push_service.to(failing)) == 3


async def test_a_push_that_keeps_failing_is_given_up_and_logged(push_relays, push_service, redis):
    relay = await call(push_relays)
    user = await call(make_user)
    device = push_service.device("broken")
    pk = await call(subscribe, user, device)
    push_service.respond("/push/broken", [(502, None)] * 10)

    await call(notify, user, "Never arrives")
    await asyncio.to_thread(settled, redis)
    assert len(push_service.to(device)) == 4
    row = await call(subscription, pk)
    assert row.last_failure_at is not None and row.last_success_at is None
    assert f"to subscription {pk} after 4 tries: 502" in relay.output()
    assert metric(relay, "wsserver_pushes") == {"failed": 1, "retried": 3}
    assert "/push/broken" not in relay.output()  # an endpoint is never logged


async def test_each_user_gets_at_most_the_push_rate_a_minute(push_relays, push_service, redis):
    relay = await call(push_relays, NOTIFICATIONS_PUSH_RATE="2")
    busy, calm = await call(make_user), await call(make_user)
    busy_device, calm_device = push_service.device("busy"), push_service.device("calm")
    await call(subscribe, busy, busy_device)
    await call(subscribe, calm, calm_device)

    sent = [await call(notify, busy, f"Burst {n}") for n in range(4)]
    await call(notify, calm, "Just one")
    await asyncio.to_thread(settled, redis)

    assert len(push_service.to(busy_device)) == 2
    assert {message(each, busy_device)["id"] for each in push_service.to(busy_device)} <= {event.pk for event in sent}
    assert len(push_service.to(calm_device)) == 1
    assert metric(relay, "wsserver_push_skipped") == {"rate_limited": 2}
    assert metric(relay, "wsserver_pushes") == {"delivered": 3}


# Several relays ----------------------------------------------------------------------------------


async def test_two_relays_push_each_event_once_and_leave_the_group_when_stopped(push_relays, push_service, redis):
    relays = [await call(push_relays), await call(push_relays)]
    user = await call(make_user)
    device = push_service.device("phone")
    await call(subscribe, user, device)

    sent = [await call(notify, user, f"Event {n}") for n in range(8)]
    await asyncio.to_thread(settled, redis)

    ids = sorted(message(each, device)["id"] for each in push_service.to(device))
    assert ids == sorted(event.pk for event in sent)
    assert len(redis.xinfo_consumers(redisconf.stream_key(), GROUP)) == 2
    for relay in relays:
        relay.stop()
    assert redis.xinfo_consumers(redisconf.stream_key(), GROUP) == []


async def test_an_entry_a_dead_relay_left_pending_is_pushed_by_another(push_relays, push_service, redis):
    key = redisconf.stream_key()
    if group_exists(redis):
        redis.xgroup_destroy(key, GROUP)
    redis.xgroup_create(key, GROUP, id="$", mkstream=True)
    user = await call(make_user)
    device = push_service.device("tablet")
    await call(subscribe, user, device)
    event = await call(notify, user, "Left behind")
    [[_, [(entry_id, _fields)]]] = redis.xreadgroup(GROUP, "dead-relay", {key: ">"}, count=1)
    redis.xclaim(key, GROUP, "dead-relay", 0, [entry_id], idle=3_600_000)  # pending for an hour

    await call(push_relays)

    [received] = await asyncio.to_thread(push_service.wait_for, device, 1)
    assert message(received, device)["id"] == event.pk
    await asyncio.to_thread(settled, redis)


async def test_a_relay_stopped_mid_push_hands_the_event_over_to_another(push_relays, push_service, redis):
    first = await call(push_relays)
    user = await call(make_user)
    device = push_service.device("slow")
    await call(subscribe, user, device)
    push_service.respond("/push/slow", [(201, None, 3)])  # answers after 3 s

    event = await call(notify, user, "Handed over")
    await asyncio.to_thread(push_service.wait_for, device, 1)
    await asyncio.to_thread(first.stop)  # while it waits for the answer
    started = time.monotonic()
    await call(push_relays)

    second = (await asyncio.to_thread(push_service.wait_for, device, 2))[1]
    assert second.at - started < 10  # not CLAIM_IDLE_MS later
    assert message(second, device)["id"] == event.pk
    await asyncio.to_thread(settled, redis)


async def test_pushes_through_a_redis_cluster(push_relays, push_service):
    """The consumer group, the rate counters of several users (one script) and who is online, all in the stream's hash slot."""
    redis_deployments.require_binaries("Web Push through a Redis Cluster")
    cluster = await asyncio.to_thread(redis_deployments.ClusterDeployment)
    client = redisaddress.client(cluster.url, decode_responses=True)
    try:
        with override_settings(NOTIFICATIONS_REDIS_URL=cluster.url):
            await call(push_relays, through=client, NOTIFICATIONS_REDIS_URL=cluster.url)
            users = [await call(make_user), await call(make_user)]
            devices = [push_service.device(f"cluster-{n}") for n in range(2)]
            for user, device in zip(users, devices):
                await call(subscribe, user, device)
            event = await call(notify, users, "Through the cluster")
            for device in devices:
                [received] = await asyncio.to_thread(push_service.wait_for, device, 1)
                assert message(received, device)["id"] == event.pk
            await asyncio.to_thread(settled, client)
    finally:
        client.close()
        await asyncio.to_thread(cluster.stop)


async def test_a_relay_without_keys_pushes_nothing(relay_factory, redis):
    if group_exists(redis):
        redis.xgroup_destroy(redisconf.stream_key(), GROUP)
    await call(relay_factory)
    user = await call(make_user)
    await call(notify, user, "Nobody pushes this")
    await asyncio.sleep(1)
    assert not group_exists(redis)


async def test_a_relay_with_keys_that_are_not_a_pair_does_not_start(relay_factory):
    env = {"NOTIFICATIONS_VAPID_PUBLIC_KEY": vapid.generate()[1], "NOTIFICATIONS_VAPID_PRIVATE_KEY": PRIVATE, "NOTIFICATIONS_VAPID_SUBJECT": SUBJECT}
    with pytest.raises(RuntimeError, match="notifications.E030"):
        await call(relay_factory, extra_env=env)


async def test_a_relay_marks_the_entries_it_holds_so_no_other_claims_them(redis, push_relays):
    """However long an entry takes (an announcement to many devices), its relay keeps it from the others' claims."""
    key = redisconf.stream_key()
    redis.xgroup_create(key, GROUP, id="$", mkstream=True)
    entry_id = redis.xadd(key, {"id": "0", "event": "{}", "routes": "[]", "at": "0"})  # an event for nobody
    sender = PushSender(bus.connect())
    try:
        redis.xreadgroup(GROUP, sender.consumer, {key: ">"}, count=1)
        redis.xclaim(key, GROUP, sender.consumer, 0, [entry_id], idle=CLAIM_IDLE_MS + 1, justid=True)  # as if long held
        sender.in_flight.add(entry_id)
        await sender.mark_in_flight()
        [pending] = redis.xpending_range(key, GROUP, "-", "+", 10)
        assert pending["consumer"] == sender.consumer and pending["time_since_delivered"] < 1000
        assert redis.xautoclaim(key, GROUP, "another-relay", CLAIM_IDLE_MS, justid=True) == []
    finally:
        await sender.redis.aclose()
        redis.xdel(key, entry_id)
