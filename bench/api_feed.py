"""
The HTTP API with a large events table: how long the list (plain and grouped), a group's
members, the unread count and mark-all-read take with 100,000 events (admin activity in bursts
of 50, direct, group and broadcast notifications mixed).

    .venv/bin/python bench/api_feed.py [--events 100000] [--database sqlite:///tmp/bench-api.sqlite3]

It builds a throwaway database (SQLite by default; any DATABASE_URL works), then times each
request through Django's test client (the view, its queries and the JSON) and prints the median
and the slowest of several runs. Timings are for reading, not for asserting: shared machines vary.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--database", default="sqlite:////tmp/bench-api.sqlite3")
    return parser.parse_args()


def build(count):
    from django.contrib.auth.models import Group, Permission, User
    from django.utils import timezone

    from notifications.models import Audience, Event, Kind, Recipient

    actor = User.objects.create_user("bench-actor", is_staff=True)
    viewer = User.objects.create_user("bench-viewer", is_staff=True)
    viewer.date_joined = timezone.now() - timezone.timedelta(days=365)
    viewer.save()
    viewer.user_permissions.set(Permission.objects.filter(content_type__app_label="auth", codename="view_group"))
    others = User.objects.bulk_create([User(username=f"bench-user-{n}") for n in range(200)])
    groups = Group.objects.bulk_create([Group(name=f"bench-group-{n}") for n in range(50)])
    viewer.groups.set(groups[:3])
    random.seed(7)
    events, recipients = [], []
    for n in range(count):
        roll = random.random()
        if roll < 0.4:
            target = random.choice(groups)
            events.append(Event(kind=Kind.ADMIN_CHANGE, title=f"changed {n}", actor=actor, target_type="auth.group", target_id=str(target.pk), target_repr=target.name))
        else:
            events.append(Event(kind=Kind.NOTIFICATION if roll < 0.9 else Kind.ANNOUNCEMENT, title=f"note {n}", actor=actor))
    events = Event.objects.bulk_create(events, batch_size=5000)
    # The admin's changes come in bursts of up to BURST (bursts.py): each names its first event.
    changes = [event for event in events if event.kind == Kind.ADMIN_CHANGE]
    for start in range(0, len(changes), BURST):
        for event in changes[start + 1 : start + BURST]:
            event.burst = changes[start].pk
    Event.objects.bulk_update(changes, ["burst"], batch_size=5000)
    for event in events:
        if event.kind == Kind.NOTIFICATION:
            if random.random() < 0.6:
                recipients.append(Recipient(event=event, user=random.choice(others + [viewer])))
            else:
                recipients.append(Recipient(event=event, group=random.choice(groups)))
        elif event.kind == Kind.ANNOUNCEMENT:
            recipients.append(Recipient(event=event, audience=Audience.ALL))
    Recipient.objects.bulk_create(recipients, batch_size=5000)
    return viewer


BURST = 50


def timed(client, method, url, runs, **params):
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        response = getattr(client, method)(url, params) if method == "get" else client.post(url)
        durations.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:500]
    return statistics.median(durations), max(durations), response.json()


def newest_group():
    from notifications.models import Event

    return Event.objects.filter(burst__isnull=False).order_by("-burst").values_list("burst", flat=True).first()


def main():
    args = parse_args()
    if args.database.startswith("sqlite:///"):
        Path(args.database.removeprefix("sqlite:///")).unlink(missing_ok=True)
    os.environ.update(DATABASE_URL=args.database, DJANGO_SETTINGS_MODULE="project.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    viewer = build(args.events)
    print(f"built {args.events:,} events in {time.perf_counter() - started:.1f} s ({args.database})")
    client = Client(SERVER_NAME="localhost")  # a host DEBUG allows
    client.force_login(viewer)
    rows = [
        ("list, first page of 20", "get", "/notifications/api/notifications/", {"limit": 20}),
        ("list, a page deep in history", "get", "/notifications/api/notifications/", {"limit": 20, "before": args.events // 2}),
        ("grouped, first page of 20", "get", "/notifications/api/notifications/", {"limit": 20, "grouped": 1}),
        ("grouped, a page deep in history", "get", "/notifications/api/notifications/", {"limit": 20, "grouped": 1, "before": args.events // 2}),
        ("a group's members, 20", "get", f"/notifications/api/groups/{newest_group()}/", {"limit": 20}),
        ("unread count", "get", "/notifications/api/unread-count/", {}),
    ]
    print(f"{'request':<32} {'median ms':>10} {'max ms':>8}")
    for label, method, url, params in rows:
        median, slowest, body = timed(client, method, url, args.runs, **params)
        print(f"{label:<32} {median:>10.1f} {slowest:>8.1f}")
    unread = client.get("/notifications/api/unread-count/").json()["unread_count"]
    median, slowest, _ = timed(client, "post", "/notifications/api/read-all/", 1)
    print(f"{'mark all read':<32} {median:>10.1f} {slowest:>8.1f}")
    median, slowest, body = timed(client, "get", "/notifications/api/unread-count/", args.runs)
    print(f"{'unread count after':<32} {median:>10.1f} {slowest:>8.1f}")
    median, slowest, _ = timed(client, "get", "/notifications/api/notifications/", args.runs, limit=20)
    print(f"{'list after':<32} {median:>10.1f} {slowest:>8.1f}")
    print(f"the viewer had {unread:,} unread events; after mark-all-read: {body['unread_count']}")


if __name__ == "__main__":
    main()
