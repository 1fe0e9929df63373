"""
The outbox: committed events that are not published yet, and publishing in commit order.

An event is stored in its transaction and published when it commits (publish_on_commit). When
Redis is unreachable at that moment, or the process dies in between, the event is committed but
has no stream position: it is in the outbox. Publishing is once-only (publishing.PUBLISH),
so any number of relays and Django processes may publish the same waiting events.

Order. Events reach clients in stream order, so an event published late must not be overtaken:
- Within a process: once one of its publications failed, the process is *behind*: each later
  commit publishes the outbox first, oldest first (its own waiting events among them), then
  itself; until that succeeds, it waits in the outbox too (catch_up).
- After Redis restarted or failed over (and may have lost its data, or its newest entries), the
  stream is not *ready* (publishing.ready_key): every publisher, relay or Django process, that
  meets it puts back the entries the stream lost (restoring.py) and publishes the whole outbox,
  oldest first, then marks the stream ready. Events committed during the outage thus come after
  those published before it and before those committed after it, whoever publishes them.
- Otherwise relays drain the outbox once a second, after a grace period that leaves fresh
  commits to their own publisher: what a dead process left behind.
"""

import logging
import threading
import time
from datetime import timedelta
from functools import partial

from django.db import DatabaseError, transaction
from django.utils import timezone

from . import redisconf
from .models import Event
from .publishing import StreamNotReady, mark_ready, message, publish, stored_routes
from .redisaddress import REDIS_ERRORS
from .restoring import restore_lost_entries

logger = logging.getLogger(__name__)

GRACE = timedelta(seconds=1)
BATCH = 500
# Batches one catch-up publishes at most (50,000 events) before marking the stream ready: a
# bound on how long one commit can be kept publishing others' events.
MAX_CATCH_UP_BATCHES = 100
# Seconds between the attempts of a process that is behind to catch up: during an outage its
# requests cost a ping at most once a second, not a query of the outbox each.
RETRY_INTERVAL = 1.0

_lock = threading.Lock()  # one publication at a time per process: its commit order is kept
_state = {"behind": False, "tried": float("-inf")}


PENDING, WITHDRAWN, SENT = "pending", "withdrawn", "sent"


def publish_on_commit(events_and_routes, using=None):
    """Publish [(event, routes)] once the current transaction on `using` commits (those not withdrawn meanwhile)."""
    if events_and_routes:
        messages = [message(event, routes) for event, routes in events_and_routes]
        for each in messages:
            each.event.publication = PENDING
        transaction.on_commit(partial(publish_committed, messages), using=using)


def publish_committed(messages):
    """What runs when their transaction commits (a partial, so notifications.testing can tell it apart)."""
    return publish_in_order(_to_send(messages))


def not_withdrawn(messages):
    return [each for each in messages if each.event.publication != WITHDRAWN]


def _to_send(messages):
    kept = not_withdrawn(messages)
    for each in kept:
        each.event.publication = SENT
    return kept


def withdraw_publication(event):
    """Cancel the publication of an event whose transaction has not committed yet; False if too late."""
    if getattr(event, "publication", None) != PENDING:
        return False
    event.publication = WITHDRAWN
    return True


def publish_in_order(messages):
    """
    Publish freshly committed events, after whatever this process could not publish before; on
    a Redis or database error they stay in the outbox and the request goes on. How many were
    published.
    """
    with _lock:
        if _state["behind"]:
            return _catch_up_when_due(own=len(messages))  # the messages are committed: the outbox holds them too
        try:
            return publish(messages)
        except StreamNotReady:
            return catch_up(own=len(messages))
        except REDIS_ERRORS as error:
            _fall_behind(f"Redis unavailable at {redisconf.redacted(redisconf.url())} ({error})", len(messages))
        except DatabaseError as error:
            _fall_behind(f"Could not record their stream positions ({error})", len(messages))
        return 0


def _fall_behind(cause, waiting):
    _state["behind"] = True
    _state["tried"] = time.monotonic()
    logger.warning("%s: %d event(s) wait in the outbox", cause, waiting)


def _catch_up_when_due(own):
    """Catch up, unless it was tried less than RETRY_INTERVAL ago or Redis does not answer yet."""
    if time.monotonic() - _state["tried"] < RETRY_INTERVAL:
        return 0
    _state["tried"] = time.monotonic()
    try:
        redisconf.connection().ping()
    except REDIS_ERRORS:
        return 0
    return catch_up(own=own)


def catch_up(card=True, own=0):
    """
    Put back what the stream lost of what was published (restoring.py), publish the whole
    outbox, oldest first, then mark the stream ready on the server all that went to: nothing
    committed later can overtake it. Errors leave the process behind, to try again with its next
    commit. `own`: how many of the waiting events are the caller's fresh ones (only the others
    are news in the log).
    """
    published = 0
    try:
        server = restore_lost_entries()
        for _ in range(MAX_CATCH_UP_BATCHES if server else 0):
            batch = pending(grace=None)
            added = publish([message(event, stored_routes(event)) for event in batch], catching_up=True, card=card)
            published += added
            if len(batch) < BATCH or not added:
                break  # the outbox is empty, or what is left in it cannot be published now
        if server:
            mark_ready(redisconf.connection(), server)  # unless a failover changed the server meanwhile
    except (*REDIS_ERRORS, DatabaseError) as error:
        if not _state["behind"]:
            logger.warning("Could not publish the outbox (%s): events wait in it", error)
        _state["behind"] = True
        return published
    _published_waiting(published - own)
    _state["behind"] = False
    return published


def pending(limit=BATCH, grace=GRACE):
    """The oldest committed events still waiting to be published (older than `grace`, if given)."""
    events = Event.objects.filter(stream_position__isnull=True)
    if grace is not None:
        events = events.filter(created_at__lte=timezone.now() - grace)
    return list(events.select_related("actor").prefetch_related("recipients").order_by("pk")[:limit])


def drain(limit=BATCH):
    """
    What relays run once a second: publish up to `limit` events left waiting, or catch up when
    the stream is not ready, which is asked even when nothing waits: so relays notice a restart
    or a failover while nothing is published. How many this call published.
    """
    with _lock:
        try:
            published = publish([message(event, stored_routes(event)) for event in pending(limit)], card=False)
        except StreamNotReady:
            return catch_up(card=False)
    _published_waiting(published)
    return published


def _published_waiting(count):
    if count > 0:
        logger.info("Published %d waiting event(s) from the outbox", count)
