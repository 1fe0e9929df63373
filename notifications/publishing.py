"""
Putting events on the bus, exactly once.

Each event becomes one entry of a Redis stream (`NOTIFICATIONS_STREAM_KEY`) with four fields:
`id`, the event's primary key; `event`, the event as the JSON object clients receive (serialized
here, once, for every relay and every client); `routes`, the JSON list of routing keys the relay
delivers it under (see topics.py); and `at`, when the event was created (microseconds since the
epoch: the relay keeps events from before a user joined away from them, as the feed does). A
stream rather than Pub/Sub, because its entry IDs are ordered (they are the clients' cursors, see
cursors.py) and a relay that lost its connection reads on from where it stopped instead of
losing what was published meanwhile.

Entries are added after the event's transaction commits (outbox.py decides when and in what
order); then the entry's position is written on the Event row. Every path publishes through one
Lua script that adds the entry only if no one has published that event before (a short-lived key
per event), so an event is published once however many processes try, and only while the stream
is *ready*: a Redis that lost its data (a restart without persistence, a failover to an empty
replica) has no ready key, and the events committed meanwhile must go first (outbox.catch_up).
"""

import json
from dataclasses import dataclass
from datetime import timezone

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Case, Value, When

from . import cursors, redisconf
from .conf import app_settings
from .deployment import execute_with_card
from .models import OBJECT_KINDS, Event
from .topics import addressee_routes, object_routes

# How long Redis remembers that an event was published: far longer than any race between a
# committing request and the outbox.
PUBLISHED_KEY_TTL = 3600


def published_key(event_id):
    """The key saying an event was published, named after the stream: deployments sharing a
    Redis (each with its own stream and database, so the same event ids) stay apart."""
    return f"{app_settings.NOTIFICATIONS_STREAM_KEY}:published:{event_id}"


def ready_key():
    """Present while the stream holds everything committed before it (see outbox.catch_up)."""
    return f"{app_settings.NOTIFICATIONS_STREAM_KEY}:ready"


NOT_READY = -1
PUBLISH_ONCE = """
if ARGV[6] == '0' and redis.call('EXISTS', KEYS[3]) == 0 then
  return -1
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'id', ARGV[3], 'event', ARGV[4], 'routes', ARGV[5], 'at', ARGV[7])
end
return false
"""


def publish_once(script, client, event_id, payload, routes, at, catching_up=False):
    """
    Queue one call of PUBLISH_ONCE (registered as `script`) on `client` (a pipeline): its result
    is the new entry's ID, False when the event was published before, or NOT_READY.
    `catching_up` publishes even when the stream is not ready (the outbox going first).
    """
    script(
        keys=[app_settings.NOTIFICATIONS_STREAM_KEY, published_key(event_id), ready_key()],
        args=[app_settings.NOTIFICATIONS_STREAM_MAXLEN, PUBLISHED_KEY_TTL, event_id, payload, routes, int(catching_up), at],
        client=client,
    )


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
    """(event_id, routes, event_json, created µs or None) from a stream entry's fields, as read by the relay (str)."""
    at = fields.get("at")
    return int(fields["id"]), json.loads(fields["routes"]), fields["event"], int(at) if at else None


@dataclass(frozen=True)
class Message:
    """What is published for an event: the event, its JSON, its routes as JSON."""

    event: Event
    payload: str
    routes: str


def message(event, routes):
    return Message(event, event_json(event), json.dumps(routes))


class StreamNotReady(Exception):
    """Redis lost its data since the stream was last made ready: the outbox must go first."""


def publish(messages, catching_up=False, card=True):
    """
    Add messages to the stream, each unless it was published already, and record their
    positions on their rows; how many this call added. RedisError when Redis is unreachable;
    StreamNotReady when the stream is not ready and not `catching_up` (nothing is added, or,
    should Redis lose its data midway, what was added before is recorded). `card`: leave the
    site's card (deployment.py) beside them; relays, which are not the site, pass False.
    """
    if not messages:
        return 0
    redis = redisconf.connection()
    script = redis.register_script(PUBLISH_ONCE)
    pipe = redis.pipeline(transaction=False)
    for each in messages:
        publish_once(script, pipe, each.event.pk, each.payload, each.routes, cursors.epoch_us(each.event.created_at), catching_up)
    results = (execute_with_card(pipe) if card else pipe.execute())[: len(messages)]
    positions = {}
    for each, entry_id in zip(messages, results):
        if entry_id and entry_id != NOT_READY:
            each.event.stream_position = cursors.position(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
            positions[each.event.pk] = each.event.stream_position
    if positions:
        # Only where none is recorded yet: if this write comes late and the outbox has meanwhile
        # published the event again (Redis lost the first entry), the newer position stands.
        Event.objects.filter(pk__in=positions, stream_position__isnull=True).update(
            stream_position=Case(*(When(pk=pk, then=Value(position)) for pk, position in positions.items()))
        )
    if NOT_READY in results:
        raise StreamNotReady  # the stream's data went while we published: what we added is recorded
    return len(positions)
