"""
Revocation and live permissions on open sockets, on every relay process, within a second:
ending a session closes its sockets with 4003; losing access to a topic unsubscribes it
(`permission_revoked`) and nothing of it arrives afterwards.
"""

import asyncio

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session

from notifications import announce, notify

from .aio import call, live_servers
from .factories import login, logout, make_group, make_user, permissions

pytestmark = live_servers

WITHIN = 1.0  # seconds: the bound for every revocation




@pytest.fixture
def two_relays(relay, relay_factory):
    return relay, relay_factory()


async def on_both(ws_clients, relays, session, topics=()):
    clients = []
    for each in relays:
        client, _ = await ws_clients.with_cookie(each, session)
        if topics:
            await client.subscribe(topics)
        clients.append(client)
    return clients


def admin_edit(group):
    root = make_user("root", superuser=True)
    LogEntry.objects.log_actions(root.pk, [group], CHANGE, change_message="edited")


# Sessions that end ------------------------------------------------------------------------------


def change_password(user):
    user.set_password("a new password")
    user.save()


def deactivate(user):
    user.is_active = False
    user.save()


def delete_session(session):
    Session.objects.filter(session_key=session.cookie).delete()


@pytest.mark.parametrize(
    "end",
    [
        lambda user, session: logout(session),
        lambda user, session: delete_session(session),
        lambda user, session: change_password(user),
        lambda user, session: deactivate(user),
        lambda user, session: user.delete(),
    ],
    ids=["logout", "session deleted", "password changed", "deactivated", "user deleted"],
)
async def test_an_ended_session_closes_its_sockets_with_4003_on_every_relay(two_relays, ws_clients, end):
    user = await call(make_user)
    session = await call(login, user)
    clients = await on_both(ws_clients, two_relays, session)
    await call(end, user, session)
    for client in clients:
        await client.expect_close(4003, timeout=WITHIN)


async def test_only_the_ended_session_is_closed(relay, ws_clients):
    user = await call(make_user)
    leaving, staying = await call(login, user), await call(login, user)
    [closing] = await on_both(ws_clients, [relay], leaving)
    [open_one] = await on_both(ws_clients, [relay], staying)
    await call(logout, leaving)
    await closing.expect_close(4003, timeout=WITHIN)
    await call(notify, user, "still here")
    await open_one.expect_event("still here")


# Permissions that change -----------------------------------------------------------------------


async def expect_revoked(client, topics):
    frame = await client.expect("unsubscribed", timeout=WITHIN)
    assert (sorted(frame["topics"]), frame["reason"]) == (sorted(topics), "permission_revoked")


async def assert_nothing_more_of_the_topic_then_control(client, user, group):
    """An admin edit of the group (not for them any more), then a notify (theirs): only the latter."""
    await call(admin_edit, group)
    await call(notify, user, "control")
    await client.expect_event("control")


async def test_a_removed_user_permission_unsubscribes_on_every_relay(two_relays, ws_clients):
    user = await call(make_user, perms=["auth.view_group"])
    group = await call(make_group)
    clients = await on_both(ws_clients, two_relays, await call(login, user), ["model:auth.group", f"object:auth.group:{group.pk}"])
    await call(user.user_permissions.clear)
    for client in clients:
        await expect_revoked(client, ["model:auth.group", f"object:auth.group:{group.pk}"])
        await assert_nothing_more_of_the_topic_then_control(client, user, group)


async def test_leaving_a_group_takes_its_permissions_and_its_notifications(two_relays, ws_clients):
    group = await call(make_group, perms=["auth.view_group"])
    user = await call(make_user, groups=[group])
    clients = await on_both(ws_clients, two_relays, await call(login, user), ["model:auth.group"])
    await call(notify, group, "to the group")
    for client in clients:
        await client.expect_event("to the group")
    await call(group.user_set.remove, user)
    for client in clients:
        await expect_revoked(client, ["model:auth.group"])
    await call(notify, group, "to the group, after")
    for client in clients:
        await assert_nothing_more_of_the_topic_then_control(client, user, group)


async def test_a_permission_taken_from_a_group_unsubscribes_its_members(two_relays, ws_clients):
    group = await call(make_group, perms=["auth.view_group"])
    member = await call(make_user, groups=[group])
    clients = await on_both(ws_clients, two_relays, await call(login, member), ["model:auth.group"])
    await call(group.permissions.remove, *await call(permissions, "auth.view_group"))
    for client in clients:
        await expect_revoked(client, ["model:auth.group"])
        await assert_nothing_more_of_the_topic_then_control(client, member, group)


async def test_a_deleted_group_unsubscribes_its_members(relay, ws_clients):
    group = await call(make_group, perms=["auth.view_group"])
    member = await call(make_user, groups=[group])
    [client] = await on_both(ws_clients, [relay], await call(login, member), ["model:auth.group"])
    other = await call(make_group)
    await call(group.delete)
    await expect_revoked(client, ["model:auth.group"])
    await assert_nothing_more_of_the_topic_then_control(client, member, other)


async def test_losing_superuser_and_staff_status(relay, ws_clients):
    user = await call(make_user, superuser=True)
    [client] = await on_both(ws_clients, [relay], await call(login, user), ["model:auth.group"])

    def demote():
        user.is_superuser = user.is_staff = False
        user.save()

    await call(demote)
    await expect_revoked(client, ["model:auth.group"])
    await call(announce, "staff only", audience="staff")
    await assert_nothing_more_of_the_topic_then_control(client, user, await call(make_group))


async def test_a_granted_permission_widens_model_star(relay, ws_clients):
    """model:* follows the models the user may see now: a new permission adds one at once."""
    user = await call(make_user)
    [client] = await on_both(ws_clients, [relay], await call(login, user), ["model:*"])
    group = await call(make_group)
    await call(user.user_permissions.add, *await call(permissions, "auth.view_group"))
    await asyncio.sleep(WITHIN)  # the re-check travels apart from events: give it its bound
    await call(admin_edit, group)
    frame = await client.expect_event()
    assert (frame["topic"], frame["event"]["kind"]) == ("model:auth.group", "admin.change")


async def test_a_last_login_save_sends_nothing(relay, ws_clients):
    """Every login saves last_login: that must not make relays re-check anything."""
    import redis
    from django.conf import settings

    from notifications.revocation import control_key

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"], decode_responses=True)
    before = client.xlen(control_key()) if client.exists(control_key()) else 0
    user = await call(make_user)
    await call(login, user)
    await call(Group.objects.create, name=f"unrelated-{user.pk}")
    assert client.xlen(control_key()) == before


async def test_an_event_held_before_a_revocation_does_not_arrive_after_it(relay, ws_clients):
    """
    Live events are held for a moment after `welcome`; one held for a topic that is then revoked
    must be dropped, not sent after the `unsubscribed` that announced the loss.
    """
    user = await call(make_user, perms=["auth.view_group"])
    group = await call(make_group)
    client, _ = await ws_clients.with_cookie(relay, await call(login, user))  # held from here
    await client.subscribe(["model:auth.group"])
    await call(admin_edit, group)  # held for the client, unless the hold already ended
    await call(user.user_permissions.clear)
    await call(notify, user, "control")
    frames = []
    while not frames or frames[-1].get("event", {}).get("title") != "control":
        frames.append(await client.recv())
    kinds = [frame["type"] if frame["type"] != "event" else frame["topic"] for frame in frames]
    revoked_at = kinds.index("unsubscribed")
    assert "model:auth.group" not in kinds[revoked_at:], kinds  # before the news, if at all
    assert frames[revoked_at]["reason"] == "permission_revoked"
