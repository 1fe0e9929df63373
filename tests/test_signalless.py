"""
Changes that send no signal are caught: every connection is re-checked periodically
(WSSERVER_RECHECK_INTERVAL, 1 s here) and at its session's expiry. QuerySet.update(), a session
whose expiry date passes, and a deleted Permission row each end what they should, on an open
socket, within the bound docs/security.md states.
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from notifications import notify
from notifications.preferences import EVERYONE
from wsserver.auth import Identity
from wsserver.client import Client

from .aio import call, live_servers
from .factories import login, make_group, make_user

pytestmark = live_servers

INTERVAL = 1.0
BOUND = INTERVAL * 2 + 2.0  # an interval, the batch's spread, and a busy machine's slack


@pytest.fixture
def rechecking_relay(relay_factory):
    return relay_factory(settings_module="tests.settings_relay_knobs", extra_env={"WSSERVER_RECHECK_INTERVAL": str(INTERVAL)})


async def test_a_user_deactivated_with_update_is_disconnected(rechecking_relay, ws_clients):
    user = await call(make_user)
    client, _ = await ws_clients.with_cookie(rechecking_relay, await call(login, user))
    await call(lambda: get_user_model().objects.filter(pk=user.pk).update(is_active=False))  # no signal
    await client.expect_close(4003, timeout=BOUND)


async def test_a_deleted_permission_row_unsubscribes(rechecking_relay, ws_clients):
    user = await call(make_user, perms=["auth.view_group"])
    client, _ = await ws_clients.with_cookie(rechecking_relay, await call(login, user))
    await client.subscribe(["model:auth.group"])
    # The rows of auth_user_user_permissions go with it, deleted by the collector: no m2m_changed.
    await call(lambda: Permission.objects.filter(codename="view_group", content_type__app_label="auth").delete())
    frame = await client.expect("unsubscribed", timeout=BOUND)
    assert (frame["topics"], frame["reason"]) == (["model:auth.group"], "permission_revoked")


async def test_a_membership_removed_in_bulk_stops_the_groups_notifications(rechecking_relay, ws_clients):
    user = await call(make_user)
    group = await call(make_group, members=[user])
    client, _ = await ws_clients.with_cookie(rechecking_relay, await call(login, user))
    await call(lambda: get_user_model().groups.through.objects.filter(group=group).delete())  # no signal
    await call(time.sleep, BOUND)
    await call(notify, group, "to the group, after")
    await call(notify, user, "control")
    await client.expect_event("control")


async def test_a_session_is_ended_when_it_expires(relay, ws_clients):
    """At its expiry, not at the next periodic re-check (the session-scoped relay re-checks every 5 minutes)."""
    session = await call(login, await call(make_user))

    def expire_soon():
        store = session.client.session
        store.set_expiry(2)
        store.save()

    await call(expire_soon)
    client, _ = await ws_clients.with_cookie(relay, session)
    started = time.monotonic()
    await client.expect_close(4003, timeout=6.0)
    assert time.monotonic() - started < 5.0


async def test_only_a_near_expiry_has_a_timer(settings):
    """
    A session that ends in weeks costs no timer on its socket: the periodic re-check sets one
    once the expiry is within three intervals (it looks at every connection at least every two).
    """
    settings.WSSERVER_RECHECK_INTERVAL = 300

    def timer_for(seconds):
        identity = Identity(1, "someone", "key", "cookie", frozenset(), None, time.time() + seconds, EVERYONE)
        client = Client(None, identity, hub=None, redis=None, spawn=None, replays=None)
        client._expire_at(identity.expires)
        return client._expiry

    assert timer_for(14 * 24 * 3600) is None
    near = timer_for(800)
    assert near is not None
    near.cancel()
    settings.WSSERVER_RECHECK_INTERVAL = None  # no periodic re-check: every expiry has its timer
    far = timer_for(14 * 24 * 3600)
    assert far is not None
    far.cancel()
