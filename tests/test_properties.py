"""
No leaks, no misses, proven over random worlds (hypothesis).

Each example draws a small world: users (staff or not, maybe a superuser, maybe an inactive
user), groups with members, permissions given to users and to groups, each user's
subscriptions, and a sequence of events (notify() to users, groups and both, announcements to
all and to staff, admin log entries about groups and users). Every active user connects with
their session cookie, alternately to two relay processes, some once more with a ticket on the
other relay (with other subscriptions), and subscribes; the events are published; then one
control notification goes to every connected user, and each connection's frames are read up to
that control (Redis stream order is delivery order, see tests/wsclient.py).

The oracle is computed here from the drawn world, from first principles, without
notifications/authorization.py: a superuser may do anything; otherwise a user's permissions are
their own plus their groups'; a model's events are for whoever has its `view_` or `change_`
permission; the inbox gets what is addressed to the user, to one of their groups, to everyone,
or to staff for staff users. Each connection must receive exactly the events it is entitled to, in
publication order, once each (even when several of its subscriptions match), under the most
specific matching topic; and the relay's answers to `subscribe` must match the oracle too.
"""

import asyncio
import itertools
import os
import uuid
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from notifications import announce, notify
from notifications.models import Event

from .factories import fetch_ticket, login, permissions, unique
from .wsclient import WSClients

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = ("group", "user")  # auth.group and auth.user: every object event of the test is about one
# Permissions drawn for users and groups; auth.add_group is a decoy (it lets one follow nothing).
PERMISSIONS = ("auth.view_group", "auth.change_group", "auth.view_user", "auth.add_group")
ADMIN_FLAGS = (ADDITION, CHANGE, DELETION)
FRAME_TIMEOUT = 10.0

# Shrinking re-runs examples against the real servers for minutes; the failing world is printed
# in full anyway. PROPERTIES_SHRINK=1 turns it on to look for a smaller one.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("PROPERTIES_SHRINK") else [])


# The world -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSpec:
    staff: bool
    superuser: bool
    active: bool
    perms: frozenset
    groups: frozenset  # indices of World.groups
    topics: tuple  # topic specs, in the order subscribed: ("inbox",), ("all",), ("model", m), ("object", m, index)


@dataclass(frozen=True)
class GroupSpec:
    perms: frozenset


@dataclass(frozen=True)
class Notify:
    users: tuple  # indices
    groups: tuple  # indices
    target: tuple = None  # (model, index): notify(target=...), which must not route like an object event


@dataclass(frozen=True)
class Announce:
    audience: str


@dataclass(frozen=True)
class AdminLog:
    model: str
    index: int
    flag: int
    actor: int


@dataclass(frozen=True)
class World:
    users: tuple
    groups: tuple
    events: tuple
    # More connections of some users, authenticated with a ticket, on the other relay: (user index, topic specs).
    extra: tuple = ()


@st.composite
def worlds(draw):
    n_users = draw(st.integers(3, 6))
    n_groups = draw(st.integers(1, 3))
    superuser = draw(st.none() | st.integers(0, n_users - 1))
    inactive = draw(st.none() | st.integers(0, n_users - 1).filter(lambda i: i != superuser))
    perm_sets = st.frozensets(st.sampled_from(PERMISSIONS), max_size=3)
    groups = tuple(GroupSpec(draw(perm_sets)) for _ in range(n_groups))
    topic_choices = (
        [("inbox",), ("all",)]
        + [("model", model) for model in MODELS]
        + [("object", "group", g) for g in range(n_groups)]
        + [("object", "user", u) for u in range(n_users)]
    )
    users = tuple(
        UserSpec(
            staff=draw(st.booleans()),
            superuser=i == superuser,
            active=i != inactive,
            perms=draw(perm_sets),
            groups=draw(st.frozensets(st.integers(0, n_groups - 1))),
            topics=tuple(draw(st.lists(st.sampled_from(topic_choices), unique=True, max_size=5))),
        )
        for i in range(n_users)
    )
    some_users = st.lists(st.integers(0, n_users - 1), unique=True, max_size=3).map(tuple)
    some_groups = st.lists(st.integers(0, n_groups - 1), unique=True, max_size=2).map(tuple)
    targets = st.none() | st.tuples(st.just("group"), st.integers(0, n_groups - 1)) | st.tuples(
        st.just("user"), st.integers(0, n_users - 1)
    )
    notifications = st.builds(Notify, some_users, some_groups, targets).filter(lambda n: n.users or n.groups)
    flags, actors = st.sampled_from(ADMIN_FLAGS), st.integers(0, n_users - 1)
    admin_logs = st.one_of(
        st.builds(AdminLog, st.just("group"), st.integers(0, n_groups - 1), flags, actors),
        st.builds(AdminLog, st.just("user"), st.integers(0, n_users - 1), flags, actors),
    )
    events = st.one_of(notifications, st.builds(Announce, st.sampled_from(["all", "staff"])), admin_logs)
    extra = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_users - 1).filter(lambda i: i != inactive),
                st.lists(st.sampled_from(topic_choices), unique=True, max_size=5).map(tuple),
            ),
            max_size=2,
        )
    )
    return World(users, groups, tuple(draw(st.lists(events, min_size=5, max_size=15))), tuple(extra))


# The oracle: first principles, from the drawn world --------------------------------------------


def permissions_of(world, i):
    user = world.users[i]
    if not user.active:
        return frozenset()
    if user.superuser:
        return frozenset(f"auth.{action}_{model}" for action in ("view", "change", "add", "delete") for model in MODELS)
    return user.perms.union(*(world.groups[g].perms for g in user.groups))


def may_follow(world, i, model):
    held = permissions_of(world, i)
    return f"auth.view_{model}" in held or f"auth.change_{model}" in held


def topic_name(spec, pks):
    if spec[0] == "inbox":
        return "inbox"
    if spec[0] == "all":
        return "model:*"
    if spec[0] == "model":
        return f"model:auth.{spec[1]}"
    return f"object:auth.{spec[1]}:{pks[spec[1]][spec[2]]}"


def allowed(world, i, spec):
    """May user i subscribe to this topic? (ModelBackend grants no object permissions.)"""
    if spec[0] in ("inbox", "all"):
        return True
    return may_follow(world, i, spec[1])


def entitled_topic(world, i, topics, event, pks):
    """The topic a connection of user i subscribed to `topics` must show `event` under, or None."""
    user = world.users[i]
    accepted = [spec for spec in topics if allowed(world, i, spec)]
    if isinstance(event, Notify):
        addressed = i in event.users or any(g in user.groups for g in event.groups)
        return "inbox" if addressed else None
    if isinstance(event, Announce):
        return "inbox" if event.audience == "all" or user.staff else None
    if ("object", event.model, event.index) in accepted:
        return f"object:auth.{event.model}:{pks[event.model][event.index]}"
    if ("model", event.model) in accepted or (("all",) in accepted and may_follow(world, i, event.model)):
        return f"model:auth.{event.model}"
    return None


# Building the world and making events (synchronous ORM code) -----------------------------------


def build(world):
    """Groups, users, permissions and sessions in the database: ({"group": pks, "user": pks}, users, logins)."""
    groups = []
    for spec in world.groups:
        group = Group.objects.create(name=unique("prop-group"))
        group.permissions.set(permissions(*spec.perms))
        groups.append(group)
    users, logins = [], []
    for spec in world.users:
        user = get_user_model().objects.create_user(
            username=unique("prop-user"),
            password=None,
            is_staff=spec.staff,
            is_superuser=spec.superuser,
            is_active=spec.active,
        )
        user.user_permissions.set(permissions(*spec.perms))
        user.groups.set([groups[g] for g in spec.groups])
        users.append(user)
        logins.append(login(user))  # force_login works for inactive users; their session authenticates no one
    pks = {"group": [g.pk for g in groups], "user": [u.pk for u in users]}
    return pks, users, groups, logins


def make_events(world, users, groups):
    """Publish the world's events in order; their ids."""
    objects = {"group": groups, "user": users}
    ids = []
    for n, event in enumerate(world.events):
        title = f"event {n}"
        if isinstance(event, Notify):
            recipients = [users[i] for i in event.users] + [groups[g] for g in event.groups]
            target = objects[event.target[0]][event.target[1]] if event.target else None
            ids.append(notify(recipients, title, target=target).pk)
        elif isinstance(event, Announce):
            ids.append(announce(title, audience=event.audience).pk)
        else:
            obj = objects[event.model][event.index]
            LogEntry.objects.log_actions(users[event.actor].pk, [obj], event.flag, change_message=title)
            ids.append(
                Event.objects.filter(kind__startswith="admin.", target_type=f"auth.{event.model}", target_id=str(obj.pk))
                .latest("pk")
                .pk
            )
    return ids


def send_control(users, connected):
    return notify([users[i] for i in set(connected)], f"control {uuid.uuid4().hex}").pk


# One example, end to end -----------------------------------------------------------------------


def describe(world, pks):
    lines = [f"groups: {[(pks['group'][g], sorted(spec.perms)) for g, spec in enumerate(world.groups)]}"]
    for i, spec in enumerate(world.users):
        lines.append(f"user {i} (pk {pks['user'][i]}): {spec}")
    lines += [f"ticket connection of user {i}: {topics}" for i, topics in world.extra]
    lines += [f"event {n}: {event}" for n, event in enumerate(world.events)]
    return "\n".join(lines)


async def subscribe_and_check(client, world, i, specs, pks):
    """Send the connection's subscriptions; the relay's answers must be the oracle's."""
    if not specs:
        return
    names = [topic_name(spec, pks) for spec in specs]
    await client.send({"type": "subscribe", "topics": names, "ref": i})
    refused = [name for spec, name in zip(specs, names) if not allowed(world, i, spec)]
    for name in refused:
        frame = await client.expect("error", timeout=FRAME_TIMEOUT)
        assert (frame["code"], frame["ref"]) == ("forbidden", i), f"user {i} subscribing to {names}: {frame}"
        assert repr(name) in frame["message"], f"user {i}: expected the refusal of {name!r} next, got {frame}"
    accepted = [name for spec, name in zip(specs, names) if allowed(world, i, spec)]
    if accepted:
        frame = await client.expect("subscribed", timeout=FRAME_TIMEOUT)
        assert (frame["topics"], frame["ref"]) == (accepted, i), f"user {i} subscribing to {names}: {frame}"


async def frames_until(client, control_id):
    """Every frame before the control event, as received."""
    frames = []
    while True:
        frame = await client.recv(timeout=FRAME_TIMEOUT)
        if frame["type"] == "event" and frame["event"]["id"] == control_id:
            assert frame["topic"] == "inbox", frame
            return frames
        frames.append(frame)


@dataclass
class Connection:
    user: int
    topics: tuple
    relay: int
    by: str  # "cookie" or "ticket"
    client: object = None


async def run_example(relays, world):
    pks, users, groups, logins = await sync_to_async(build)(world)
    active = [i for i, spec in enumerate(world.users) if spec.active]
    # One connection per active user by cookie, alternately on each relay; the extra ones by
    # ticket, on the relay the user's first connection is not on.
    first_relay = {i: n % len(relays) for n, i in enumerate(active)}
    connections = [Connection(i, world.users[i].topics, first_relay[i], "cookie") for i in active]
    connections += [Connection(i, topics, (first_relay[i] + 1) % len(relays), "ticket") for i, topics in world.extra]
    clients = WSClients()
    try:
        for each in connections:
            if each.by == "cookie":
                each.client, welcome = await clients.with_cookie(relays[each.relay], logins[each.user])
            else:
                ticket = await sync_to_async(fetch_ticket)(logins[each.user])
                each.client, welcome = await clients.with_ticket(relays[each.relay], ticket)
            assert welcome["user"]["id"] == pks["user"][each.user]
        for i, spec in enumerate(world.users):
            if not spec.active:  # the session of an inactive user authenticates no one: ticket mode
                client = await clients.open(relays[i % len(relays)], cookie=logins[i].cookie)
                await client.send({"type": "subscribe", "topics": ["inbox"]})
                await client.expect_close(4001)
        await asyncio.gather(*(subscribe_and_check(c.client, world, c.user, c.topics, pks) for c in connections))

        event_ids = await sync_to_async(make_events)(world, users, groups)
        control_id = await sync_to_async(send_control)(users, [c.user for c in connections])
        received = await asyncio.gather(*(frames_until(c.client, control_id) for c in connections))

        failures = []
        for each, frames in zip(connections, received):
            expected = [
                (event_id, topic)
                for event, event_id in zip(world.events, event_ids)
                if (topic := entitled_topic(world, each.user, each.topics, event, pks)) is not None
            ]
            got = [(f["event"]["id"], f["topic"]) if f["type"] == "event" else f for f in frames]
            if got != expected:
                expected_ids, got_ids = {e for e, _ in expected}, [g[0] for g in got if isinstance(g, tuple)]
                failures.append(
                    f"user {each.user} by {each.by} on relay {each.relay}, topics {each.topics}: "
                    f"expected {expected}, got {got}; leaked {sorted(set(got_ids) - expected_ids)}, "
                    f"missed {sorted(expected_ids - set(got_ids))}, "
                    f"duplicated {sorted(e for e in set(got_ids) if got_ids.count(e) > 1)}"
                )
        ids = dict(zip(event_ids, itertools.count()))
        assert not failures, "\n".join(failures) + f"\nevent ids → event numbers: {ids}\n" + describe(world, pks)
    finally:
        await clients.close_all()


@pytest.fixture
def second_relay(relay_factory):
    return relay_factory()


@settings(
    max_examples=20,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_every_client_receives_exactly_what_it_is_entitled_to(relay, second_relay, world):
    # A fresh event loop per example (async_to_sync); the ORM runs in this thread.
    async_to_sync(run_example)([relay, second_relay], world)
