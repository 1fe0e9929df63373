"""
What the site and its relays must share, and the card that lets a relay check it.

A relay serves a site only with the site's SECRET_KEY (sessions and tickets are signed with it),
the site's database (sessions, users, permissions, events) and the site's Redis (events). A relay
started under other settings, another environment or on another host gets none of this wrong
loudly: its sockets just fail. So the site leaves a *card* in the Redis it publishes to, naming
its SECRET_KEY and its database by fingerprints, and each relay compares them with its own
(wsserver.health).

- The SECRET_KEY's fingerprint is an HMAC of a fixed message under it: it shows whether two
  keys are equal and reveals nothing of them.
- The database's fingerprint is when this app's first migration was applied to it: that
  django_migrations row is written once per database and never flushed (tests' flushes
  included), and a copy of the database (a replica, a restored backup) carries it along, as it
  should.

Django processes write the card when they publish or issue a ticket, at most once a minute
each; relays never write it, so a misconfigured relay cannot vouch for itself.
"""

import hashlib
import json
import time

from django.conf import settings
from django.db import connections, router
from django.db.migrations.recorder import MigrationRecorder
from django.utils.crypto import salted_hmac

from . import redisconf

CARD_INTERVAL = 60.0
FIRST_MIGRATION = ("notifications", "0001_initial")
_written = {"at": float("-inf"), "database": None}


def card_key():
    return f"{redisconf.stream_key()}:site"


def secret_fingerprint(secret):
    return salted_hmac("notifications.deployment", "SECRET_KEY fingerprint", secret=secret, algorithm="sha256").hexdigest()[:32]


def own_secret_fingerprints():
    """Fingerprints of every key this process accepts signatures from (SECRET_KEY and its fallbacks)."""
    return {secret_fingerprint(key) for key in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]}


def events_database():
    from .models import Event

    return router.db_for_write(Event)


def database_fingerprint():
    """The fingerprint of the events' database; None before this app's migrations are applied to it."""
    recorder = MigrationRecorder(connections[events_database()])
    if not recorder.has_table():
        return None
    app, name = FIRST_MIGRATION
    applied = recorder.migration_qs.filter(app=app, name=name).values_list("applied", flat=True).first()
    return hashlib.sha256(applied.isoformat().encode()).hexdigest()[:32] if applied else None


def execute_with_card(pipe):
    """
    Execute a Redis pipeline with the site's card added to it, at most once a minute per
    process: when the execution fails, the card is due again with the next one.
    """
    due = _add_card(pipe)
    try:
        return pipe.execute()
    except Exception:
        if due:
            _written["at"] = float("-inf")
        raise


def _add_card(pipe):
    """Add the card to `pipe` if due (True), counting it as written from now on."""
    if time.monotonic() - _written["at"] < CARD_INTERVAL:
        return False
    if _written["database"] is None:
        _written["database"] = database_fingerprint()  # the database stays the same for a process
    if _written["database"] is None:
        return False  # not migrated yet: nothing to vouch for
    card = {"secret": secret_fingerprint(settings.SECRET_KEY), "database": _written["database"]}
    pipe.set(card_key(), json.dumps(card))
    _written["at"] = time.monotonic()
    return True
