"""
Replays see what the feed sees (hypothesis, against real relays).

Each example draws a world in which users join one after another while events happen: notify()
to users and groups, announcements to all and to staff, admin changes of groups and users. Then
each user connects, subscribes to some topics and resumes from a cursor drawn from every kind
there is: `0-0` and its padded spellings, the cursor of any event (from before the user joined,
or after), and the welcome's own. What the replay delivers must be exactly what the user's HTTP
feed (notifications.feed, the code behind the API) lists for those topics after that cursor, in
stream order, each once, plus the user's own object events, which the feed leaves out as
presentation and the protocol delivers (the widget drops them on both paths). Before this rule,
`resume "0-0"` replayed announcements, group notifications and admin changes from before the
user existed.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications import announce, cursors, notify
from notifications.authorization import followable_models
from notifications.feed import events_for
from notifications.models import OBJECT_KINDS, Event

from .factories import login, permissions, unique
from .wsclient import WSClients

pytestmark = pytest.mark.django_db(transaction=True)

FRAME_TIMEOUT = 10.0
PERMISSIONS = ("auth.view_group", "auth.view_user")
TOPICS = ("model:*", "model:auth.group", "model:auth.user")
ZERO_CURSORS = ("0-0", "00-0", "0-000000")


@dataclass(frozen=True)
class Join:
    staff: bool
    perms: frozenset
    groups: frozenset


@dataclass(frozen=True)
class Happen:
    kind: str  # "notify", "announce", "admin"
    who: int  # a user or group index (taken modulo what exists), or the audience's staffness
    actor: int = 0


@st.composite
def worlds(draw):
    n_groups = draw(st.integers(1, 2))
    joins = st.builds(Join, st.booleans(), st.frozensets(st.sampled_from(PERMISSIONS)), st.frozensets(st.integers(0, n_groups - 1)))
    happenings = st.builds(Happen, st.sampled_from(["notify-user", "notify-group", "announce", "admin-group", "admin-user"]), st.integers(0, 9), st.integers(0, 9))
    steps = draw(st.lists(st.one_of(joins, happenings), min_size=6, max_size=14).filter(lambda s: any(isinstance(x, Join) for x in s)))
    resumes = draw(st.lists(st.tuples(st.integers(0, 99), st.lists(st.sampled_from(TOPICS), unique=True, min_size=1, max_size=2)), min_size=1, max_size=4))
    return n_groups, steps, resumes


def play(n_groups, steps):
    """Run the world's steps in order: (users, ids of the events made)."""
    groups = [Group.objects.create(name=unique("replay-group")) for _ in range(n_groups)]
    users, made = [], []
    root = get_user_model().objects.create_user(username=unique("replay-root"), is_superuser=True, is_staff=True)
    for step in steps:
        if isinstance(step, Join):
            user = get_user_model().objects.create_user(username=unique("replay-user"), is_staff=step.staff)
            user.user_permissions.set(permissions(*step.perms))
            user.groups.set([groups[g] for g in step.groups])
            users.append(user)
            continue
        title = f"happening {uuid.uuid4().hex[:8]}"
        if step.kind == "notify-user" and users:
            made.append(notify(users[step.who % len(users)], title).pk)
        elif step.kind == "notify-group":
            made.append(notify(groups[step.who % len(groups)], title).pk)
        elif step.kind == "announce":
            made.append(announce(title, audience="staff" if step.who % 2 else "all").pk)
        elif step.kind.startswith("admin-"):
            objects = groups if step.kind == "admin-group" else users or [root]
            actor = users[step.actor % len(users)] if users and step.actor % 3 else root
            LogEntry.objects.log_actions(actor.pk, [objects[step.who % len(objects)]], CHANGE, change_message=title)
            made.append(Event.objects.latest("pk").pk)
    return users, made


def cursor_choices(made):
    positions = sorted(Event.objects.filter(pk__in=made).values_list("stream_position", flat=True))
    return [*ZERO_CURSORS, *(cursors.cursor(p) for p in positions), "welcome"]


def feed_oracle(user, topics, after, until):
    """The ids the feed lists for these topics in (after, until], plus the user's own object events."""
    followable = followable_models(user)
    if "model:*" not in topics:
        followable &= {topic.removeprefix("model:") for topic in topics}
    listed = events_for(user)
    own = Event.objects.filter(kind__in=OBJECT_KINDS, actor=user, created_at__gte=user.date_joined)
    inbox_or_followed = listed.exclude(kind__in=OBJECT_KINDS) | listed.filter(target_type__in=followable)
    ids = set(inbox_or_followed.values_list("pk", flat=True)) | set(own.filter(target_type__in=followable).values_list("pk", flat=True))
    return list(
        Event.objects.filter(pk__in=ids, stream_position__gt=after, stream_position__lte=until)
        .order_by("stream_position")
        .values_list("pk", flat=True)
    )


async def replayed(relay, session, topics, cursor):
    """
    (ids replayed, the cursor resumed from, the welcome's cursor, the topics accepted) for a
    resume right after subscribing; a ping after it delimits the replay.
    """
    clients = WSClients()
    try:
        client, welcome = await clients.with_cookie(relay, session)
        cursor = welcome["cursor"] if cursor == "welcome" else cursor
        await client.send({"type": "subscribe", "topics": topics, "ref": "topics"})
        await client.send({"type": "resume", "cursor": cursor})
        await client.send({"type": "ping", "ref": "replayed"})
        ids, accepted = [], []
        while (frame := await client.recv(timeout=FRAME_TIMEOUT))["type"] != "pong":
            if frame["type"] == "subscribed":
                accepted = frame["topics"]
            elif frame["type"] == "event":
                ids.append(frame["event"]["id"])
            else:
                assert frame["type"] == "error" and frame["code"] == "forbidden", f"resume from {cursor!r}: {frame}"
        return ids, cursor, welcome["cursor"], accepted
    finally:
        await clients.close_all()


async def run_example(relay, world):
    n_groups, steps, resumes = world
    users, made = await sync_to_async(play)(n_groups, steps)
    choices = await sync_to_async(cursor_choices)(made)
    sessions = [await sync_to_async(login)(user) for user in users]
    for n, (pick, topics) in enumerate(resumes):
        session = sessions[n % len(sessions)]
        cursor = choices[pick % len(choices)]
        got, cursor, welcome, accepted = await replayed(relay, session, topics, cursor)
        since = cursors.position(cursor)
        expected = await sync_to_async(feed_oracle)(session.user, accepted, since, cursors.position(welcome))
        assert got == expected, (
            f"user {users.index(session.user)} resuming from {cursor!r} on {topics}: replayed {got}, the feed lists "
            f"{expected}; events made {made}; steps {steps}"
        )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(world=worlds())
def test_a_replay_delivers_what_the_feed_lists_for_its_topics(relay, world):
    async_to_sync(run_example)(relay, world)


async def _resume_zero(relay, joined):
    from .factories import make_user

    user = await sync_to_async(make_user)(joined=joined)
    clients = WSClients()
    try:
        client, _ = await clients.with_cookie(relay, await sync_to_async(login)(user))
        await client.send({"type": "resume", "cursor": "0-0"})
        await client.send({"type": "ping", "ref": "after"})
        types = []
        while not types or types[-1] != "pong":
            types.append((await client.recv())["type"])
        return types
    finally:
        await clients.close_all()


def test_resume_from_zero_keeps_the_replay_window(relay):
    """A user who joined before the window: `0-0` reaches beyond it, so resync, not a replay of it all."""
    long_ago = timezone.now() - timedelta(days=3)
    assert async_to_sync(_resume_zero)(relay, long_ago) == ["resync", "pong"]
    assert async_to_sync(_resume_zero)(relay, timezone.now()) == ["pong"]  # joined now: nothing missed
