"""
Email digests: each user's unread, unmuted inbox notifications since their last digest, at the
frequency they chose, each notification emailed once (`manage.py send_notification_digests`).

What a digest holds. The user's inbox (events addressed to them, one of their groups, everyone,
or staff when they are staff: feed.py's rule, here for a batch of users at once), not the
admin.* and model.* events about objects, which are the feed's other half and no news by email;
newer than the newest event of their last digest (DigestState.last_event_id) and not older than
their joining; unread, and not muted (Mutes.matches_event). A user's first digest, or one after
a long pause, looks back one period, and never more than LOOKBACK. Events younger than SETTLE
wait for the next run: on PostgreSQL ids are taken before commit, so a slow transaction can
commit an id lower than one already seen; SETTLE is how long such a transaction may take
without its event being passed over.

When. A user is due when their last digest is a period old (hourly, daily, weekly), less EARLY
so that a run every few minutes keeps the rhythm instead of drifting by a run each period. A due
user with nothing to say gets no email, and is due again a period later. A user with a live
socket on some relay right now (notifications.online) sees their notifications live: they are
left due for a later run. When Redis cannot say, nobody counts as connected (one warning per run).

Exactly once. Runs may overlap (cron every few minutes, a slow run) and may die anywhere. The
design, per batch of users:

1. Claim: one conditional UPDATE sets a lease (this run's token, an expiry) on the users whose
   lease is free or expired; the rows it changed are this run's. The condition is checked by the
   database on the row it writes (SQLite writes one transaction at a time; PostgreSQL re-checks
   the WHERE on the newest row version after waiting for a concurrent writer), so two runs never
   hold the same user. Due-ness is decided again on the rows as claimed, so a user another run
   has just served is left alone.
2. Record: in one transaction, a Digest row per email (its Message-ID, its events) is inserted
   and each user's DigestState moves past the events it took in; then it commits, BEFORE any
   email leaves. A crash before this commit sends nothing and records nothing.
3. Send: each email goes through Django's email backend, and its row is marked sent right after
   the server accepted it (one UPDATE per email, so at most one email is ever in doubt).
4. Release the lease.

A run that dies leaves its claimed users leased and their unsent Digest rows behind. Once the
lease has expired, the next run claims those users and sends each unsent row again, rebuilt from
the row (same events, same Message-ID) rather than from the inbox, whose watermark has moved on.
The one duplicate this allows: a run killed after the server accepted an email and before the
commit marking it sent; the copy sent again carries the same Message-ID, by which mail systems
recognise it as the same message. Nothing is lost and nothing else is repeated. A run never
sends once its lease is near expiry (it stops LEASE_MARGIN before, by its own monotonic clock,
leaving the rest for the next run), so a run that stalled cannot send alongside the one that
took its users over. Leases are written by one machine's clock and read by another's: the
machines that run the command must agree on the time within LEASE_MARGIN (NTP does).

An email the server refused (or a connection that failed) stays unsent: that user is retried
by the next run, the others go on, and the run reports the failure (the command exits non-zero).
After MAX_ATTEMPTS failures the email is given up, so that one dead address does not fail every
run forever.

Cost. A batch of users is read, claimed and built with a fixed number of queries, whatever its
size (up to the database's parameter limits: on SQLite Django splits inserts of over ~120 rows);
then one UPDATE per email sent. bench/digests.py measures it.
"""

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import get_connection
from django.db import router, transaction
from django.db.models import BigIntegerField, Case, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from . import digest_mail, online
from .conf import app_settings
from .models import (
    OBJECT_KINDS,
    Audience,
    Digest,
    DigestFrequency,
    DigestState,
    Event,
    Preferences,
    ReadMarker,
    Receipt,
    Recipient,
)
from .preferences import choices_of, site_defaults
from .redisaddress import REDIS_ERRORS

logger = logging.getLogger(__name__)

INTERVALS = {
    DigestFrequency.HOURLY: timedelta(hours=1),
    DigestFrequency.DAILY: timedelta(days=1),
    DigestFrequency.WEEKLY: timedelta(weeks=1),
}
EARLY = timedelta(minutes=5)
SETTLE = timedelta(minutes=1)
LOOKBACK = timedelta(weeks=2)
# Digest rows are kept this long (what was sent when, for support questions), then deleted.
RETENTION = timedelta(days=30)
# Sending attempts after which an email is given up (an address the server keeps refusing): its
# row stays, unsent, with the last error, and the user's later digests go on.
MAX_ATTEMPTS = 5
# A run stops sending this long before its lease ends (a margin for one slow SMTP exchange).
LEASE_MARGIN = 60
DEFAULT_BATCH_SIZE = 100


class LeaseLost(RuntimeError):
    """Another run holds users this run had claimed: their lease expired under this run."""


def is_due(frequency, last_digest_at, now):
    """Whether a user with this frequency, whose last digest was made then, is due a digest at `now`."""
    interval = INTERVALS.get(frequency)
    return interval is not None and (last_digest_at is None or last_digest_at <= now - interval + EARLY)


def _due_in_sql(now):
    """is_due() as a filter on users annotated with `digest_frequency` and `digest_last` (candidates())."""
    due = Q(digest_last__isnull=True)
    for frequency, interval in INTERVALS.items():
        due |= Q(digest_frequency=frequency, digest_last__lte=now - interval + EARLY)
    return Q(digest_frequency__in=list(INTERVALS)) & due


def unsent_digests():
    """Digests recorded and not yet sent, nor given up."""
    return Digest.objects.filter(sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)


def candidates(now):
    """
    The users a run looks at, by primary key: active, with an email address, and either due (by
    the state as read now; claim() decides) or owed an unsent digest.
    """
    users = get_user_model()._default_manager
    chosen = Subquery(Preferences.objects.filter(user_id=OuterRef("pk")).values("digest")[:1])
    last_digest = Subquery(DigestState.objects.filter(user_id=OuterRef("pk")).values("last_digest_at")[:1])
    unsent = unsent_digests().values("user_id")
    email_field = users.model.get_email_field_name()
    found = users.exclude(**{email_field: ""}).exclude(**{f"{email_field}__isnull": True})
    if hasattr(users.model, "is_active"):
        found = found.filter(is_active=True)
    return found.annotate(
        digest_frequency=Coalesce(NullIf(chosen, Value("")), Value(site_defaults()["digest"])), digest_last=last_digest
    ).filter(_due_in_sql(now) | Q(pk__in=unsent))


@dataclass
class Outcome:
    """What a run did; `failed` names the users whose email failed (retried by the next run)."""

    sent: int = 0
    resent: int = 0
    empty: int = 0
    postponed: int = 0
    unfinished: int = 0
    failed: dict = field(default_factory=dict)


class Run:
    """
    One run over every user: `Run(now=...).run()` returns an Outcome. `now` (default: the current
    time) is the clock due times and leases are reckoned by; tests and `--now` move it.
    """

    def __init__(self, now=None, batch_size=DEFAULT_BATCH_SIZE, lease=None):
        if batch_size < 1:
            raise ValueError("The batch size must be at least 1.")
        self.now = now or timezone.now()
        self.batch_size = batch_size
        self.lease = timedelta(seconds=app_settings.NOTIFICATIONS_DIGEST_LEASE if lease is None else lease)
        self.token = uuid.uuid4().hex
        self.outcome = Outcome()
        self.database = router.db_for_write(Digest)
        self._warned_redis = False
        self._connection = None
        self._floors = None

    def run(self):
        digest_mail.site_url()  # SiteURLError now, rather than after claiming a batch
        self._floors = self._event_floors()
        Digest.objects.filter(created_at__lt=self.now - RETENTION).delete()
        last = None
        try:
            while True:
                users = candidates(self.now).order_by("pk")
                if last is not None:
                    users = users.filter(pk__gt=last)
                batch = list(users[: self.batch_size])
                if not batch:
                    return self.outcome
                self.batch(batch)
                last = batch[-1].pk
        finally:
            self._close_connection()

    # One batch ------------------------------------------------------------------------------

    def batch(self, users):
        """Claim, record, send and release one batch of users (candidates())."""
        by_id = {user.pk: user for user in users}
        choices = choices_of(list(by_id))
        states = self.claim(list(by_id))
        deadline = time.monotonic() + self.lease.total_seconds() - LEASE_MARGIN
        try:
            unsent = defaultdict(list)
            for digest in unsent_digests().filter(user_id__in=list(states)).order_by("pk"):
                unsent[digest.user_id].append(digest)
            off = [pk for pk in states if choices[pk].digest not in INTERVALS]
            # Unsubscribed since: an unsent digest is not sent after all.
            if any(pk in unsent for pk in off):
                Digest.objects.filter(user_id__in=off, sent_at__isnull=True).delete()
            due = [
                pk for pk in states
                if pk not in unsent and pk not in off and is_due(choices[pk].digest, states[pk].last_digest_at, self.now)
            ]
            due = self._not_connected(due)
            new = self.record([by_id[pk] for pk in due], states, choices)
            resend = [digest for pk in states if pk not in off for digest in unsent.get(pk, ())]
            self.send(resend, by_id, choices, deadline, resent=True)
            self.send(new, by_id, choices, deadline)
        finally:
            held = DigestState.objects.filter(user_id__in=list(states), lease_owner=self.token)
            held.update(lease_owner="", lease_until=None)

    def claim(self, user_ids):
        """{user id: DigestState} of those of `user_ids` this run now holds (leased until now + lease)."""
        DigestState.objects.bulk_create([DigestState(user_id=pk) for pk in user_ids], ignore_conflicts=True)
        DigestState.objects.filter(Q(lease_until__isnull=True) | Q(lease_until__lte=self.now), user_id__in=user_ids).update(
            lease_owner=self.token, lease_until=self.now + self.lease
        )
        return {state.user_id: state for state in DigestState.objects.filter(user_id__in=user_ids, lease_owner=self.token)}

    def _not_connected(self, user_ids):
        if not user_ids or not app_settings.NOTIFICATIONS_DIGEST_SKIP_CONNECTED:
            return user_ids
        try:
            connected = online.connected_users(user_ids)
        except REDIS_ERRORS as error:
            if not self._warned_redis:
                self._warned_redis = True
                logger.warning("Redis is unreachable, so digests go to every due user, connected or not: %s", error)
            return user_ids
        self.outcome.postponed += len(connected)
        return [pk for pk in user_ids if pk not in connected]

    def _event_floors(self):
        """
        {frequency or None: id}: the newest event older than one period (a first digest starts
        after it), and under None older than LOOKBACK (no digest starts before it). One indexed
        lookup each, once per run.
        """
        spans = {**INTERVALS, None: LOOKBACK}
        newest = Event.objects.order_by("-created_at", "-pk").values_list("pk", flat=True)
        return {key: newest.filter(created_at__lt=self.now - span).first() or 0 for key, span in spans.items()}

    def _since(self, state, frequency):
        """The id after which a user's digest starts."""
        floor = self._floors[frequency if state.last_digest_at is None else None]
        return max(state.last_event_id, floor, self._floors[None])

    def record(self, users, states, choices):
        """
        Build the digests of `users` (claimed and due), insert their Digest rows and move their
        DigestState past what they took in, in one transaction; the new Digests, with their
        `events` attached.
        """
        if not users:
            return []
        since = {user.pk: self._since(states[user.pk], choices[user.pk].digest) for user in users}
        inboxes = inbox_events(users, min(since.values()), self.now - SETTLE)
        ids = list(since)
        read_through = dict(ReadMarker.objects.filter(user_id__in=ids).values_list("user_id", "read_through"))
        receipts = Receipt.objects.filter(user_id__in=ids, event_id__gt=min(since.values()))
        receipts = set(receipts.values_list("user_id", "event_id"))
        limit = app_settings.NOTIFICATIONS_DIGEST_MAX_ITEMS
        digests, newest = [], {}
        for user in users:
            joined = getattr(user, "date_joined", None)
            taken = [
                event for event in inboxes[user.pk] if event.pk > since[user.pk] and (joined is None or event.created_at >= joined)
            ]
            newest[user.pk] = max((event.pk for event in taken), default=since[user.pk])
            mutes, marker = choices[user.pk].mutes, read_through.get(user.pk, 0)
            unread = [
                event for event in taken
                if event.pk > marker and (user.pk, event.pk) not in receipts and not mutes.matches_event(event)
            ]
            if not unread:
                self.outcome.empty += 1
                continue
            unread.sort(key=lambda event: event.pk, reverse=True)
            digest = Digest(
                user_id=user.pk,
                message_id=digest_mail.new_message_id(),
                event_ids=[event.pk for event in unread[:limit]],
                total=len(unread),
                created_at=self.now,
            )
            digest.events = unread[:limit]
            digests.append(digest)
        with transaction.atomic(using=self.database):
            moved = DigestState.objects.filter(user_id__in=ids, lease_owner=self.token).update(
                last_event_id=Case(
                    *[When(user_id=pk, then=Value(event_id)) for pk, event_id in newest.items()],
                    default=F("last_event_id"),
                    output_field=BigIntegerField(),
                ),
                last_digest_at=self.now,
            )
            if moved != len(ids):
                raise LeaseLost(
                    f"Another run took over {len(ids) - moved} of this run's {len(ids)} users before their digests were "
                    "recorded (is NOTIFICATIONS_DIGEST_LEASE shorter than a batch takes?); nothing of the batch was recorded."
                )
            Digest.objects.bulk_create(digests)
        return digests

    # Sending ---------------------------------------------------------------------------------

    def send(self, digests, users, choices, deadline, resent=False):
        if resent and digests:
            events = Event.objects.select_related("actor").in_bulk([pk for digest in digests for pk in digest.event_ids])
            for digest in digests:
                digest.events = [events[pk] for pk in digest.event_ids if pk in events]
        for digest in digests:
            if time.monotonic() > deadline:
                self.outcome.unfinished += 1
                continue  # the lease is running out: the next run sends it
            user, user_choices = users[digest.user_id], choices[digest.user_id]
            language = user_choices.language or settings.LANGUAGE_CODE
            message = digest_mail.build_message(digest, user, digest.events, user_choices.digest, language)
            row = Digest.objects.filter(message_id=digest.message_id)
            try:
                message.connection = self._open_connection()
                message.send()
            except (OSError, ValueError) as error:  # smtplib.SMTPException is an OSError
                self._close_connection()
                reason = " ".join(str(error).split()) or type(error).__name__
                self.outcome.failed[user.pk] = reason
                row.update(attempts=F("attempts") + 1, last_error=reason[:1000])
                logger.warning("The digest %s to user %s was not sent (retried by the next run): %s", digest.message_id, user.pk, reason)
                continue
            row.update(sent_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
            if resent:
                self.outcome.resent += 1
            else:
                self.outcome.sent += 1

    def _open_connection(self):
        """The run's connection to the mail server, opened once and kept for every email (not one per email)."""
        if self._connection is None:
            connection = get_connection()
            connection.open()
            self._connection = connection
        return self._connection

    def _close_connection(self):
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except OSError:
                pass  # a connection that broke: nothing left to close


def inbox_events(users, after_id, created_before):
    """
    {user id: [Event]}: the inbox events (not object events) of each of `users` with ids above
    `after_id`, created before `created_before`, with their actors. Three queries whatever the
    number of users: their groups, the recipients with their events, nothing per user.
    """
    ids = [user.pk for user in users]
    groups = defaultdict(set)
    model = get_user_model()
    if hasattr(model, "groups"):
        through = model.groups.through
        source = model.groups.field.m2m_field_name()
        target = model.groups.field.m2m_reverse_field_name()
        for user_id, group_id in through.objects.filter(**{f"{source}__in": ids}).values_list(source, target):
            groups[user_id].add(group_id)
    addressed = Q(user_id__in=ids) | Q(audience__in=[Audience.ALL, Audience.STAFF])
    all_groups = set().union(*groups.values())
    if all_groups:
        addressed |= Q(group_id__in=all_groups)
    rows = (
        Recipient.objects.filter(addressed, event_id__gt=after_id, event__created_at__lt=created_before)
        .exclude(event__kind__in=OBJECT_KINDS)
        .select_related("event", "event__actor")
    )
    by_user, by_group, by_audience = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    for row in rows:
        if row.user_id is not None:
            by_user[row.user_id][row.event_id] = row.event
        elif row.group_id is not None:
            by_group[row.group_id][row.event_id] = row.event
        else:
            by_audience[row.audience][row.event_id] = row.event
    inboxes = {}
    for user in users:
        events = {**by_audience[Audience.ALL], **by_user[user.pk]}
        if getattr(user, "is_staff", False):
            events.update(by_audience[Audience.STAFF])
        for group_id in groups[user.pk]:
            events.update(by_group[group_id])
        inboxes[user.pk] = list(events.values())
    return inboxes
