"""
Email digests for 10,000 users: queries per batch, and time (notifications.digests).

    .venv/bin/python bench/digests.py [--users 10000] [--batch-size 100] [--locmem] [--keep]

A throwaway world (bench/harness.py: SQLite, a Redis of its own): `--users` users with an
email address and a daily digest, each with 3 notifications of their own (one already read),
a group notification to the first 1,000, and an announcement to everyone; 100 users mute the
kind of one of theirs. Then one run of `send_notification_digests` (digests.Run), measured batch
by batch: the queries that read, claim and build a batch (counted with CaptureQueriesContext,
less the one UPDATE per email that marks it sent), the time building it, and the time sending.

Emails go to a real SMTP server on 127.0.0.1 by default (aiosmtpd's Sink, which accepts and
discards, in a process of its own), through Django's SMTP backend; with --locmem, to Django's
in-memory backend, which leaves only the building and rendering. The output says which.
"""

import argparse
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import World, log  # noqa: E402

SITE = "https://bench.example.com"
OWN_NOTIFICATIONS = 3
GROUP_SIZE = 1_000
MUTING = 100


def populate(count):
    """The users and their notifications, inserted in bulk (no publishing: no relay runs here)."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from notifications.models import Audience, Event, Preferences, Receipt, Recipient

    password = make_password("bench-password")
    joined = timezone.now() - timedelta(days=30)
    User.objects.bulk_create(
        [User(username=f"reader{n:05d}", email=f"reader{n:05d}@bench.example.com", password=password, date_joined=joined) for n in range(count)],
        batch_size=1000,
    )
    users = list(User.objects.filter(username__startswith="reader").order_by("pk"))
    Preferences.objects.bulk_create(
        [Preferences(user_id=user.pk, digest="daily", muted_kinds=["invoice.due"] if n < MUTING else None) for n, user in enumerate(users)],
        batch_size=1000,
    )
    created = timezone.now() - timedelta(minutes=10)
    events = Event.objects.bulk_create(
        [
            Event(title=f"Order {n} of {user.username} shipped", url=f"/orders/{n}/", created_at=created, kind="invoice.due" if n == 0 else "notification")
            for user in users
            for n in range(OWN_NOTIFICATIONS)
        ],
        batch_size=1000,
    )
    Recipient.objects.bulk_create(
        [Recipient(event=event, user=user) for n, user in enumerate(users) for event in events[n * OWN_NOTIFICATIONS : (n + 1) * OWN_NOTIFICATIONS]],
        batch_size=1000,
    )
    Receipt.objects.bulk_create(
        [Receipt(user=user, event=events[n * OWN_NOTIFICATIONS + 1]) for n, user in enumerate(users)], batch_size=1000
    )
    group = Group.objects.create(name="bench-digest-group")
    group.user_set.add(*users[:GROUP_SIZE])
    team = Event.objects.create(title="Team meeting moved", created_at=created)
    Recipient.objects.create(event=team, group=group)
    everyone = Event.objects.create(kind="announcement", title="Maintenance tonight", created_at=created)
    Recipient.objects.create(event=everyone, audience=Audience.ALL)
    return users


def smtp_server():
    """aiosmtpd accepting and discarding every message, in a process of its own (not competing with this one for the GIL)."""
    port = harness.free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + harness.START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, port
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("aiosmtpd did not start") from None
            time.sleep(0.05)


def measured_run(batch_size):
    """A digests.Run that records, per batch: users, queries (less one per email sent), build and send seconds."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifications import digests

    class MeasuredRun(digests.Run):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.batches = []
            self._sending = 0.0

        def batch(self, users):
            sent_before = self.outcome.sent + self.outcome.resent + len(self.outcome.failed)
            self._sending = 0.0
            connection.queries_log.clear()  # a bounded deque (9,000): counts past it would go wrong
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                super().batch(users)
                took = time.perf_counter() - started
            emails = self.outcome.sent + self.outcome.resent + len(self.outcome.failed) - sent_before
            self.batches.append({"users": len(users), "queries": len(queries) - emails, "emails": emails,
                                 "build_s": took - self._sending, "send_s": self._sending})

        def send(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return super().send(*args, **kwargs)
            finally:
                self._sending += time.perf_counter() - started

    return MeasuredRun(batch_size=batch_size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--locmem", action="store_true", help="Django's in-memory email backend instead of a real SMTP server")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    world = World(keep=args.keep)
    server = None
    try:
        world.setup_django()
        from django.core import mail
        from django.test import override_settings
        from django.test.utils import setup_test_environment

        log(f"== {args.users:,} users, {OWN_NOTIFICATIONS} notifications each (1 read, 1 muted for {MUTING}), "
            f"a group notification to {GROUP_SIZE:,}, an announcement to all")
        started = time.perf_counter()
        populate(args.users)
        log(f"   made in {time.perf_counter() - started:.1f} s")
        email = {"NOTIFICATIONS_SITE_URL": SITE}
        if args.locmem:
            setup_test_environment()  # mail.outbox
            email["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
            where = "Django's locmem email backend (building and rendering only)"
        else:
            server, port = smtp_server()
            email.update(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=port)
            where = f"a real SMTP server (aiosmtpd's Sink, a process of its own) on 127.0.0.1:{port}, through Django's SMTP backend"
        with override_settings(**email):
            run = measured_run(args.batch_size)
            started = time.perf_counter()
            outcome = run.run()
            total = time.perf_counter() - started
        # The Sink keeps nothing: each email counted sent was answered 250 by it.
        received = f"{len(mail.outbox):,} in the outbox" if args.locmem else "each accepted by the server"
        batches = run.batches
        queries = sorted({batch["queries"] for batch in batches})
        full = [batch for batch in batches if batch["users"] == args.batch_size] or batches
        log(f"== one run, batches of {args.batch_size}, emails to {where}")
        log(f"   {len(batches)} batches; {outcome.sent:,} digests sent ({received}), {len(outcome.failed)} failed, "
            f"{outcome.empty} with nothing unread")
        log(f"   queries per batch: 1 (the next page of due users) + {', '.join(map(str, queries))} (reading, claiming, "
            "building, recording, releasing); plus 1 UPDATE per email sent")
        log(f"   per full batch: build {statistics.median(b['build_s'] for b in full) * 1000:.0f} ms median "
            f"(reading, claiming, recording), send {statistics.median(b['send_s'] for b in full) * 1000:.0f} ms median "
            "(rendering, sending, marking sent)")
        log(f"   total {total:.1f} s: {outcome.sent / total:,.0f} digests/s; build {sum(b['build_s'] for b in batches):.1f} s, "
            f"send {sum(b['send_s'] for b in batches):.1f} s")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        world.close()


if __name__ == "__main__":
    main()
