"""
Read state on every open socket of a user: marking notifications read, and telling the sockets.

Marking one notification or all of them read (the HTTP API from any tab or device, or
mark_read() / mark_all_read() from the site's code) sends, once the transaction commits, a
`read` frame to every connection following that user's inbox, on every relay:

    {"type": "read", "topic": "inbox", "ids": [12, 15] | null, "up_to": <id> | null,
     "unread_count": 3, "latest": <id> | null}

`ids` are the notifications marked read (null for "all", then `up_to` is the newest id that
covered); `unread_count` is the count after the change, and `latest` the id up to which that
count accounts for every event (feed.unread_state): a client sets its badge to the count and
afterwards counts only events with a higher id, so an event committed before the count but
delivered after the frame is not counted twice.

The frame is no event: it has no row and no cursor, so it is not replayed on resume (after any
reconnection a client reloads its count over HTTP). It travels on the relays' control stream
(revocation.py), which every relay reads in the same XREAD as the events; the relay writes it
as it is to the followers of the user's route `inbox:user:<pk>` (wsserver.hub.Hub.send_unreplayed).
Like control messages, it is not kept in the outbox: when Redis is unreachable at that moment it
is lost (logged), and the sockets' badges catch up with the next frame or reload.
"""

import json
import logging

from django.db import DatabaseError, router, transaction

from . import feed, redisconf
from .models import Event, Receipt
from .redisaddress import REDIS_ERRORS
from .revocation import add_control

logger = logging.getLogger(__name__)

# The control message's field naming the user whose sockets get the frame (revocation.py's are "user" and "group").
FIELD = "read"


def mark_read(user, events):
    """
    Mark events read for `user`: an Event, an event id, or an iterable of them. Only events of
    the user's notifications are marked (feed.py), others are left alone; returns the ids
    marked, and once the transaction commits their `read` frame goes to the user's sockets.
    """
    wanted = _ids(events)
    database = router.db_for_write(Receipt)
    with transaction.atomic(using=database):
        ids = sorted(feed.events_for(user).filter(pk__in=wanted).values_list("pk", flat=True)) if wanted else []
        if ids:
            feed.mark_read(user, ids)
            transaction.on_commit(lambda: publish_read(user, ids=ids), using=database)
    return ids


def mark_all_read(user):
    """
    Mark every notification of `user` read (everything published so far); returns the newest
    event id that covers. Once the transaction commits, the `read` frame goes to their sockets.
    """
    database = router.db_for_write(Receipt)
    with transaction.atomic(using=database):
        up_to = feed.mark_all_read(user)
        transaction.on_commit(lambda: publish_read(user, up_to=up_to or None), using=database)
    return up_to


def _ids(events):
    if isinstance(events, (Event, int, str)):
        events = [events]
    ids = set()
    for each in events:
        pk = each.pk if isinstance(each, Event) else each
        try:
            ids.add(int(pk))
        except (TypeError, ValueError):
            raise TypeError(f"mark_read() takes events or event ids, not {each!r}.") from None
    return ids


def read_frame(ids, up_to, unread_count, latest):
    return json.dumps(
        {"type": "read", "topic": "inbox", "ids": ids, "up_to": up_to, "unread_count": unread_count, "latest": latest},
        separators=(",", ":"),
    )


def publish_read(user, ids=None, up_to=None):
    """Count the user's unread notifications as committed now, and send the frame to their sockets."""
    try:
        unread_count, latest = feed.unread_state(user)
        frame = read_frame(ids, up_to, unread_count, latest)
        add_control(redisconf.connection(), {FIELD: str(user.pk), "frame": frame})
    except (*REDIS_ERRORS, DatabaseError) as error:
        logger.warning("Could not tell the sockets of user %s that notifications were read: %s", user.pk, error)
