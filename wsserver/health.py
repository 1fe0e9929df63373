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

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Max
from websockets.datastructures import Headers
from websockets.http11 import Response

from notifications import cursors, deployment, redisconf
from notifications.conf import app_settings
from notifications.models import Event

from . import metrics
from .bus import REDIS_DOWN

logger = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds, for handshakes refused while the relay cannot serve
READY_WAIT = 2.0  # seconds a handshake waits for a starting relay to reach Redis before 503
INTERVAL = 10.0  # seconds between examinations while all is well
INTERVAL_WHILE_ILL = 2.0  # and while something is wrong, so recovery is noticed soon
# A publication newer than Redis's start by more than this, missing from its stream, is the
# site's publishing elsewhere (clocks of the Django hosts and Redis may differ a little).
CLOCK_SLACK_MS = 2_000

# Problems with which no handshake can be authenticated (or trusted): handshakes get 503.
BLOCKING = frozenset({"database", "migrations", "secret_key", "site_database", "site_redis"})


class Diagnosis:
    """The problems this relay has now, by check; each logged once when it appears and when it clears."""

    def __init__(self):
        self.problems = {}
        self.since = {}
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
    def serving(self):
        """Whether handshakes may proceed."""
        return self.reading.is_set() and not (self.problems.keys() & BLOCKING)

    def database_failed(self, error):
        """An ORM call failed: the next examination, now, says why (down, or not migrated)."""
        logger.debug("Database error: %s", error)
        self.wake.set()

    async def ready(self):
        """Whether handshakes may proceed, waiting a little for the reader at start (normally milliseconds)."""
        if self.problems.keys() & BLOCKING:
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
    """(unapplied migrations, the database's fingerprint, newest published position) (ORM: in a thread)."""
    connection = connections[deployment.events_database()]
    executor = MigrationExecutor(connection)
    unapplied = [migration for migration, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())]
    if unapplied:
        return unapplied, None, None
    newest = Event.objects.aggregate(newest=Max("stream_position"))["newest"]
    return [], deployment.database_fingerprint(), newest


async def redis_facts(redis):
    """(the site's card or None, the stream's newest entry ID or None, when Redis started in ms)."""
    card = await redis.get(deployment.card_key())
    newest = await redis.xrevrange(app_settings.NOTIFICATIONS_STREAM_KEY, count=1)
    uptime = (await redis.info("server"))["uptime_in_seconds"]
    return json.loads(card) if card else None, newest[0][0] if newest else None, int((time.time() - uptime) * 1000)


async def examine(diagnosis, redis, run_sync):
    """One examination of the relay's configuration and dependencies; problems reported or cleared."""
    try:
        unapplied, fingerprint, newest_published = await run_sync(database_facts)
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
        card, newest_entry, redis_started_ms = await redis_facts(redis)
    except REDIS_DOWN:
        return  # the reader reports Redis itself
    compare_with_the_site(diagnosis, card, fingerprint)
    if card is None:
        look_for_publications_elsewhere(diagnosis, newest_published, newest_entry, redis_started_ms)
    else:
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


def look_for_publications_elsewhere(diagnosis, newest_published, newest_entry, redis_started_ms):
    """
    No card: the site has not published here since this Redis started, or publishes elsewhere.
    It publishes elsewhere when the database records a publication made while this Redis was up
    that its stream does not hold (the newest entries of a stream are never trimmed).
    """
    published_ms = cursors.milliseconds(newest_published) if newest_published else 0
    missing = published_ms > redis_started_ms + CLOCK_SLACK_MS and (
        newest_entry is None or cursors.position(newest_entry) < newest_published
    )
    if missing:
        diagnosis.report(
            "site_redis",
            f"Events the site published are not in this relay's Redis stream {app_settings.NOTIFICATIONS_STREAM_KEY!r} "
            f"at {redisconf.redacted(redisconf.url())}: the site publishes to another Redis or stream. Give the relay "
            f"the site's {redisconf.source()} and NOTIFICATIONS_STREAM_KEY.",
        )
    else:
        diagnosis.clear("site_redis", "The site publishes to this Redis (after {lasted})")


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
