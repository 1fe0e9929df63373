"""
Putting events on the bus, after their transaction commits, exactly once.

Each event becomes one entry of a Redis stream (`NOTIFICATIONS_STREAM_KEY`) with three fields:
`id`, the event's primary key; `event`, the event as the JSON object clients receive (serialized
here, once, for every relay and every client); and `routes`, the JSON list of routing keys the
relay delivers it under (see topics.py). A stream rather than Pub/Sub, because its entry IDs are
ordered (they are the clients' cursors, see cursors.py) and a relay that lost its connection
reads on from where it stopped instead of losing what was published meanwhile.

Entries are added in `transaction.on_commit`: a rolled-back transaction publishes nothing. Then
the entry's position is written on the Event row. A committed event without a position is in
the outbox (Redis was down, or the process died in between); relays drain it (outbox.py). Both
paths publish through one Lua script that adds the entry only if no one has published that
event before (a short-lived key per event), so an event is published once however many
processes try.
"""

import json
import logging
from datetime import timezone

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Case, Value, When
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from . import cursors
from .conf import app_settings
from .models import OBJECT_KINDS, Event
from .topics import addressee_routes, object_routes

logger = logging.getLogger(__name__)

# How long Redis remembers that an event was published: far longer than any race between a
# committing request and the outbox.
PUBLISHED_KEY_TTL = 3600


def published_key(event_id):
    """The key saying an event was published, named after the stream: deployments sharing a
    Redis (each with its own stream and database, so the same event ids) stay apart."""
    return f"{app_settings.NOTIFICATIONS_STREAM_KEY}:published:{event_id}"

PUBLISH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'id', ARGV[3], 'event', ARGV[4], 'routes', ARGV[5])
end
return false
"""


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


def event_json(event):
    return json.dumps(event_payload(event), separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)


def object_event_routes(event):
    """An object event's routes; an object of a proxy model is also its concrete model's."""
    try:
        concrete = apps.get_model(event.target_type)._meta.concrete_model._meta.label_lower
    except LookupError:
        concrete = None  # a content type whose model was removed: its own label is all there is
    return object_routes(event.target_type, event.target_id, concrete)


def stored_routes(event):
    """The routes of a stored event, from its target or its Recipient rows (prefetch them)."""
    if event.kind in OBJECT_KINDS:
        return object_event_routes(event)
    recipients = list(event.recipients.all())
    return addressee_routes(
        [r.user_id for r in recipients if r.user_id is not None],
        [r.group_id for r in recipients if r.group_id is not None],
        [r.audience for r in recipients if r.audience],
    )


def decode_message(fields):
    """(event_id, routes, event_json) from a stream entry's fields, as read by the relay (str)."""
    return int(fields["id"]), json.loads(fields["routes"]), fields["event"]


def message(event, routes):
    """What publish() sends for an event: (event, its JSON, its routes as JSON)."""
    return event, event_json(event), json.dumps(routes)


def publish_on_commit(events_and_routes, using=None):
    """Publish [(event, routes)] once the current transaction on `using` commits."""
    if events_and_routes:
        messages = [message(event, routes) for event, routes in events_and_routes]
        transaction.on_commit(lambda: publish(messages), using=using)


def publish(messages):
    """
    Add [(event, event_json, routes_json)] to the stream, each unless it was published already,
    and record their positions. On a Redis error they stay in the outbox; the request goes on.
    """
    if not messages:
        return 0
    try:
        redis = get_redis_connection(app_settings.NOTIFICATIONS_REDIS_ALIAS)
        script = redis.register_script(PUBLISH_ONCE)
        pipe = redis.pipeline(transaction=False)
        for event, payload, routes in messages:
            script(
                keys=[app_settings.NOTIFICATIONS_STREAM_KEY, published_key(event.pk)],
                args=[app_settings.NOTIFICATIONS_STREAM_MAXLEN, PUBLISHED_KEY_TTL, event.pk, payload, routes],
                client=pipe,
            )
        entry_ids = pipe.execute()
    except RedisError as error:
        logger.warning("Redis unavailable (%s): %d event(s) wait in the outbox", error, len(messages))
        return 0
    positions = {}
    for (event, _, _), entry_id in zip(messages, entry_ids):
        if entry_id:
            event.stream_position = cursors.position(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
            positions[event.pk] = event.stream_position
    if positions:
        # Only where none is recorded yet: if this write comes late and the outbox has meanwhile
        # published the event again (Redis lost the first entry), the newer position stands.
        Event.objects.filter(pk__in=positions, stream_position__isnull=True).update(
            stream_position=Case(*(When(pk=pk, then=Value(position)) for pk, position in positions.items()))
        )
    return len(positions)
