"""
Putting events on the bus, after their transaction commits.

Each event becomes one entry of a Redis stream (`NOTIFICATIONS_STREAM_KEY`) with two fields:
`event`, the event as the JSON object clients receive (serialized here, once, for every relay
and every client), and `routes`, the JSON list of routing keys the relay delivers it under
(see topics.py). A stream rather than Pub/Sub, because its entries have ordered IDs, which
become the clients' cursors, and a relay that lost its Redis connection reads on from where it
stopped instead of losing what was published meanwhile.

Entries are added in `transaction.on_commit`: a rolled-back transaction publishes nothing.
"""

import json
import logging
from datetime import timezone

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from .conf import app_settings
from .topics import route_priority

logger = logging.getLogger(__name__)


def event_payload(event):
    """The event as clients see it (PROTOCOL.md, `event` frames and the HTTP API)."""
    actor = None
    if event.actor_id is not None:
        actor = {"id": event.actor_id, "username": event.actor.get_username()}
    target = None
    if event.target_type:
        target = {"type": event.target_type, "id": event.target_id, "repr": event.target_repr}
    created_at = event.created_at.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return {
        "id": event.pk,
        "kind": event.kind,
        "title": event.title,
        "body": event.body,
        "url": event.url,
        "actor": actor,
        "target": target,
        "created_at": created_at.replace("+00:00", "Z"),
        "data": event.data,
    }


def encode_message(event, routes):
    """The stream entry for `event`: routes sorted most specific first (topics.route_priority)."""
    return {
        "event": json.dumps(event_payload(event), separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder),
        "routes": json.dumps(sorted(set(routes), key=lambda r: (route_priority(r), r))),
    }


def decode_message(fields):
    """(routes, event_json) from a stream entry's fields, as read by the relay (decoded to str)."""
    return json.loads(fields["routes"]), fields["event"]


def publish_on_commit(messages, using=None):
    """Add `messages` (from encode_message) to the stream once the current transaction commits."""
    if messages:
        transaction.on_commit(lambda: _add_to_stream(messages), using=using)


def _add_to_stream(messages):
    try:
        redis = get_redis_connection(app_settings.NOTIFICATIONS_REDIS_ALIAS)
        pipe = redis.pipeline(transaction=False)
        for message in messages:
            pipe.xadd(
                app_settings.NOTIFICATIONS_STREAM_KEY,
                message,
                maxlen=app_settings.NOTIFICATIONS_STREAM_MAXLEN,
                approximate=True,
            )
        pipe.execute()
    except RedisError:
        # The events are committed in the database; the request must not fail because the bus
        # is down. They stay readable over HTTP.
        logger.exception("Could not publish %d event(s) to Redis", len(messages))
