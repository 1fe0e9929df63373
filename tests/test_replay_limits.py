"""
What a replay may cost: the rows it loads are those its routes may carry (not the whole range),
and resumes beyond a user's rate are refused with `rate_limited`, then `resync`.
"""

import pytest
from django.db.models import F
from django.db.models.signals import post_init

from notifications import announce, notify
from notifications.models import Event
from wsserver.replay import stored_entries

from .aio import call
from .factories import login, make_group, make_user


@pytest.mark.django_db
def test_a_replay_from_the_database_loads_only_the_rows_its_routes_may_carry():
    reader, bystander = make_user(), make_user()
    group = make_group(members=[reader])
    mine = [notify(reader, "for the reader").pk, notify(group, "for the group").pk, announce("for all").pk]
    for n in range(200):
        notify(bystander, f"not for the reader {n}")
    Event.objects.update(stream_position=F("id"))  # as if published (this test's transaction never commits)
    loaded = []

    def count(sender, instance, **kwargs):
        loaded.append(instance.pk)

    post_init.connect(count, sender=Event)
    try:
        routes = {f"inbox:user:{reader.pk}", f"inbox:group:{group.pk}", "inbox:all", "model:auth.group"}
        entries = stored_entries(0, None, routes)
    finally:
        post_init.disconnect(count, sender=Event)
    assert [event_id for _, event_id, *_ in entries] == mine
    assert sorted(loaded) == sorted(mine)  # 3 rows, not 203


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_orm_thread_connection")
async def test_resumes_beyond_the_users_rate_are_refused_then_resynced(relay_factory, ws_clients):
    relay = await call(
        relay_factory, settings_module="tests.settings_relay_knobs",
        extra_env={"WSSERVER_REPLAY_RATE": "0.01", "WSSERVER_REPLAY_BURST": "2"},
    )
    user = await call(make_user)
    session = await call(login, user)
    answers = []
    for _ in range(3):
        client, welcome = await ws_clients.with_cookie(relay, session)
        await client.send({"type": "resume", "cursor": welcome["cursor"], "ref": "again"})
        await client.send({"type": "ping", "ref": "done"})
        frames = [await client.recv()]
        while frames[-1]["type"] != "pong":
            frames.append(await client.recv())
        answers.append([frame.get("code", frame["type"]) for frame in frames])
    assert answers == [["pong"], ["pong"], ["rate_limited", "resync", "pong"]]
    # Another user is not held back by this one's flood.
    other, welcome = await ws_clients.with_cookie(relay, await call(login, await call(make_user)))
    await other.send({"type": "resume", "cursor": welcome["cursor"]})
    await other.send({"type": "ping"})
    assert (await other.recv())["type"] == "pong"
