"""
Whether this relay can serve, and what to fix when it cannot.

A relay needs the site's SECRET_KEY, the site's database (migrated) and the site's Redis. Got
wrong, each only shows as sockets that fail, so the relay looks for them itself, at start and
every few seconds (examine): each problem is one ERROR line naming the setting to fix, logged
when it appears (and a line when it clears), a `wsserver_problem{check=...}` gauge, a 503 on
/healthz, and, for those that make it unable to authenticate anyone, a 503 with Retry-After on
every handshake, so browsers retry with their backoff instead of giving up.

The site's side of the comparison is the card it leaves in Redis (notifications.deployment).
"""

import asyncio
import json
import logging
import time
from http import HTTPStatus

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from websockets.datastructures import Headers
from websockets.http11 import Response

from notifications import deployment, redisconf
from notifications.conf import app_settings

from . import metrics
from .bus import REDIS_DOWN
from .replay import last_published_position

logger = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds, for handshakes refused while the relay cannot serve
READY_WAIT = 2.0  # seconds a handshake waits for a starting relay to reach Redis before 503
INTERVAL = 10.0  # seconds between examinations while all is well
INTERVAL_WHILE_ILL = 2.0  # and while something is wrong (or looks it), so a change is noticed soon
# Seconds a publication the database records may stay unseen by this relay's reader, which
# meets every entry of its stream within milliseconds, before it is taken for the site's
# publishing to another Redis or stream.
UNSEEN_GRACE = 8.0

# Problems with which no handshake can be authenticated (or trusted): handshakes get 503.
BLOCKING = frozenset({"database", "migrations", "secret_key", "site_database", "site_redis"})
# The apps whose tables the relay reads (besides the user model's): their migrations must be applied.
RELAY_APPS = frozenset({"notifications", "auth", "contenttypes", "sessions"})


class Diagnosis:
    """The problems this relay has now, by check; each logged once when it appears and when it clears."""

    def __init__(self):
        self.problems = {}
        self.since = {}
        self.unseen = None  # (position, since when): a publication the reader has not met yet
        self.reading = asyncio.Event()  # set once the Redis reader knows where live delivery begins
        self.wake = asyncio.Event()  # examine now: an ORM call failed (the database down? a table missing?)

    def report(self, check, message):
        """The check fails: logged when it starts failing (its words kept up to date meanwhile)."""
        if check not in self.problems:
            logger.error(message)
            self.since[check] = time.monotonic()
            metrics.PROBLEMS.labels(check).set(1)
        self.problems[check] = message

    def clear(self, check, recovery):
        """The problem is gone: log `recovery` ("Redis is back after {lasted}")."""
        if self.problems.pop(check, None) is not None:
            lasted = f"{time.monotonic() - self.since.pop(check):.1f} s"
            logger.info(recovery.format(lasted=lasted))
            metrics.PROBLEMS.labels(check).set(0)

    def down_for(self, check):
        return round(time.monotonic() - self.since[check], 1) if check in self.since else 0

    @property
    def blocked(self):
        """Whether a problem keeps handshakes from being authenticated."""
        return bool(self.problems.keys() & BLOCKING)

    @property
    def serving(self):
        """Whether handshakes may proceed."""
        return self.reading.is_set() and not self.blocked

    def database_failed(self, error):
        """An ORM call failed: the next examination, now, says why (down, or not migrated)."""
        logger.debug("Database error: %s", error)
        self.wake.set()

    async def ready(self):
        """Whether handshakes may proceed, waiting a little for the reader at start (normally milliseconds)."""
        if self.blocked:
            return False
        if not self.reading.is_set():
            try:
                await asyncio.wait_for(self.reading.wait(), READY_WAIT)
            except TimeoutError:
                return False
        return self.serving

    @property
    def healthy(self):
        return self.serving and not self.problems

    @property
    def next_examination(self):
        """Seconds until the next examination."""
        return INTERVAL if self.healthy and self.unseen is None else INTERVAL_WHILE_ILL


def database_name():
    """Which database the relay uses, for messages (never its password)."""
    settings = connections[deployment.events_database()].settings_dict
    vendor = settings["ENGINE"].rsplit(".", 1)[-1]
    host = ":".join(str(part) for part in (settings.get("HOST"), settings.get("PORT")) if part)
    return f"{vendor} database {settings['NAME']!s}" + (f" on {host}" if host else "")


def database_down(diagnosis, error):
    """Report the database unreachable."""
    reason = " ".join(str(error).split()) or type(error).__name__  # drivers' messages span lines
    diagnosis.report(
        "database",
        f"The relay cannot reach its database ({database_name()}): {reason}. "
        "Handshakes are answered 503 until it is back; check DATABASES (DATABASE_URL).",
    )


def database_facts():
    """(unapplied migrations the relay needs, the database's fingerprint, newest published position) (ORM: in a thread)."""
    connection = connections[deployment.events_database()]
    executor = MigrationExecutor(connection)
    needed = RELAY_APPS | {get_user_model()._meta.app_label}
    unapplied = [
        migration
        for migration, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())
        if migration.app_label in needed
    ]
    if unapplied:
        return unapplied, None, None
    return [], deployment.database_fingerprint(), last_published_position()


def database_facts_retried():
    """database_facts(), tried again on a new connection once: a connection the server dropped is no outage."""
    try:
        return database_facts()
    except DatabaseError:
        connections[deployment.events_database()].close()
        return database_facts()


async def redis_facts(redis):
    """The site's card, or None."""
    card = await redis.get(deployment.card_key())
    return json.loads(card) if card else None


async def examine(diagnosis, redis, run_sync, reached):
    """
    One examination of the relay's configuration and dependencies; problems reported or cleared.
    `reached()`: the stream position up to which the relay's reader has delivered.
    """
    try:
        unapplied, fingerprint, newest_published = await run_sync(database_facts_retried)
    except DatabaseError as error:
        database_down(diagnosis, error)
        return
    diagnosis.clear("database", "The database is back after {lasted}")
    if unapplied:
        apps = sorted({migration.app_label for migration in unapplied})
        diagnosis.report(
            "migrations",
            f"{len(unapplied)} migration(s) not applied to the relay's {database_name()} ({', '.join(apps)}): run "
            "`python manage.py migrate` with the site's settings, or give the relay the site's DATABASES.",
        )
        return
    diagnosis.clear("migrations", "Migrations are applied (after {lasted})")
    try:
        card = await redis_facts(redis)
    except REDIS_DOWN:
        return  # the reader reports Redis itself
    compare_with_the_site(diagnosis, card, fingerprint)
    if card is None:
        look_for_publications_elsewhere(diagnosis, newest_published, reached())
    else:
        diagnosis.unseen = None
        diagnosis.clear("site_redis", "The site publishes to this Redis (after {lasted})")


def compare_with_the_site(diagnosis, card, fingerprint):
    """The site's card (if it left one) against this relay's SECRET_KEY and database."""
    if card is not None and card.get("secret") not in deployment.own_secret_fingerprints():
        diagnosis.report(
            "secret_key",
            "The relay's SECRET_KEY is not the site's (the site's card in Redis says so): it cannot verify sessions "
            "or tickets. Run runwsserver with the site's settings (SECRET_KEY, e.g. DJANGO_SECRET_KEY).",
        )
    else:
        diagnosis.clear("secret_key", "SECRET_KEY matches the site's (after {lasted})")
    if card is not None and card.get("database") != fingerprint:
        diagnosis.report(
            "site_database",
            f"The site publishing to this Redis uses another database than the relay's {database_name()}: give the "
            f"relay the site's DATABASES (or, if this Redis is another site's, the site's Redis: {redisconf.source()}).",
        )
    else:
        diagnosis.clear("site_database", "The relay's database is the site's (after {lasted})")


def look_for_publications_elsewhere(diagnosis, newest_published, reached):
    """
    No card: the site has not published here since this Redis lost its data, or publishes
    elsewhere. It publishes elsewhere when the database records a publication that this
    relay's reader has not delivered UNSEEN_GRACE seconds after it was first noticed.
    """
    if newest_published is None or newest_published <= reached:
        diagnosis.unseen = None
        diagnosis.clear("site_redis", "The site publishes to this Redis (after {lasted})")
        return
    if diagnosis.unseen is None or diagnosis.unseen[0] <= reached:
        diagnosis.unseen = (newest_published, time.monotonic())  # noticed now: looked at again soon
        return
    if time.monotonic() - diagnosis.unseen[1] >= UNSEEN_GRACE:
        diagnosis.report(
            "site_redis",
            f"Events the site published are not in this relay's Redis stream {app_settings.NOTIFICATIONS_STREAM_KEY!r} "
            f"at {redisconf.redacted(redisconf.url())}: the site publishes to another Redis or stream. Give the relay "
            f"the site's {redisconf.source()} and NOTIFICATIONS_STREAM_KEY.",
        )


def plain_response(status, content_type, content, **headers):
    """An HTTP response for the relay's own endpoints (not a WebSocket handshake)."""
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(content))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            *((name.replace("_", "-"), str(value)) for name, value in headers.items()),
        ]
    )
    return Response(status.value, status.phrase, headers, content)


def json_response(status, body, **headers):
    return plain_response(status, "application/json", json.dumps(body).encode() + b"\n", **headers)


def metrics_response():
    body, content_type = metrics.render()
    return plain_response(HTTPStatus.OK, content_type, body)


def public_health(diagnosis):
    """/healthz on the public port: up or down, nothing more."""
    if diagnosis.healthy:
        return json_response(HTTPStatus.OK, {"status": "ok"})
    return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unavailable"}, Retry_After=RETRY_AFTER)


def unavailable():
    """The answer to a handshake while the relay cannot serve."""
    return plain_response(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        b"The notification relay cannot serve right now: try again shortly.\n",
        Retry_After=RETRY_AFTER,
    )
