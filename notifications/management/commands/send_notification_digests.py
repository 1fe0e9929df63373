"""
`manage.py send_notification_digests`: email each due user their digest (notifications.digests).

Made for cron or a systemd timer every few minutes: silent when all went well (-v 2 prints
what it did), exit status 1 when an email could not be sent (those users are retried by the
next run) or the run failed, and safe to run while another run is still going.
"""

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notifications import digests
from notifications.digest_mail import SiteURLError


def moment(value):
    """--now: an ISO 8601 date and time; a naive one is in the current time zone."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now {value!r} is not an ISO 8601 date and time, such as 2026-12-02T17:00:00+00:00.") from None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


class Command(BaseCommand):
    help = "Email each user whose digest is due their unread notifications since their last digest."

    def add_arguments(self, parser):
        parser.add_argument(
            "--now",
            help="Reckon due times and leases from this moment (ISO 8601) instead of the current time: for tests and for catching up.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=digests.DEFAULT_BATCH_SIZE,
            help=f"Users read, claimed and built together (default {digests.DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args, now=None, batch_size=None, verbosity=1, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            outcome = digests.Run(now=moment(now) if now else None, batch_size=batch_size).run()
        except (SiteURLError, digests.LeaseLost) as error:
            raise CommandError(str(error)) from None
        if verbosity >= 2:
            self.stdout.write(
                f"Digests: {outcome.sent} sent, {outcome.resent} sent again (unsent by an earlier run), "
                f"{outcome.empty} due with nothing new, {outcome.postponed} postponed (connected now), "
                f"{outcome.unfinished} left for the next run, {len(outcome.failed)} failed."
            )
        if outcome.failed:
            failures = "; ".join(f"user {pk}: {reason}" for pk, reason in sorted(outcome.failed.items()))
            raise CommandError(f"{len(outcome.failed)} digest(s) could not be sent and will be retried by the next run: {failures}")
