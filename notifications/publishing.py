"""
Putting events on the bus, exactly once.

Each event becomes one entry of a Redis stream (redisconf.stream_key(), NOTIFICATIONS_STREAM_KEY)
with four fields: `id`, the event's primary key; `event`, the event as the JSON object clients
receive (serialized here, once, for every relay and every client); `routes`, the JSON list of
routing keys the relay delivers it under (see topics.py); and `at`, when the event was created
(microseconds since the epoch: the relay keeps events from before a user joined away from them,
as the feed does). A stream rather than Pub/Sub, because its entry IDs are ordered (they are the
clients' cursors, see cursors.py) and a relay that lost its connection reads on from where it
stopped instead of losing what was published meanwhile.

Entries are added after the event's transaction commits (outbox.py decides when and in what
order); then the entry's position is written on the Event row. Every path publishes through one
Lua script, one call for a whole batch (a Cluster client runs no script in a pipeline). It adds
an event only if no one published it before (a short-lived key per event remembers its entry, so
a publisher that lost Redis's answer records the position all the same), and only while the
stream is *ready*: the ready mark names the Redis server that holds everything committed before
it (its run_id). A Redis that restarted (its data lost, or reloaded from a snapshot older than
its last entries), or a replica promoted by a failover (replication is asynchronous: the newest
entries may not have reached it), is another server: the stream is not ready until the entries it
lost are put back and the events committed meanwhile are published first (outbox.catch_up).
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
    """The key holding the entry an event was published as, named after the stream: deployments
    sharing a Redis (each with its own stream and database, so the same event ids) stay apart."""
    return f"{redisconf.stream_key()}:published:{event_id}"


def ready_key():
    """The ready mark: the run_id of the server whose stream holds everything committed before it."""
    return f"{redisconf.stream_key()}:ready"


# In Lua, the Redis server a script runs on: another after a restart or a failover.
SERVER_ID = "string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')"
NOT_READY = -1
# KEYS: the stream, its ready mark, then each event's published key. ARGV: MAXLEN, the published
# keys' TTL, '1' to publish even when the stream is not ready (catching up), then four per event:
# id, event, routes, at. Returns NOT_READY, or per event its new entry's ID, or {what its published
# key holds}: the entry it was published as before.
PUBLISH = (
    "if ARGV[3] == '0' and redis.call('GET', KEYS[2]) ~= " + SERVER_ID + " then return -1 end"
    + """
local results = {}
for i = 3, #KEYS do
  local before = redis.call('GET', KEYS[i])
  if before then
    results[i - 2] = {before}
  else
    local at = 4 * i - 8
    local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
      'id', ARGV[at], 'event', ARGV[at + 1], 'routes', ARGV[at + 2], 'at', ARGV[at + 3])
    redis.call('SET', KEYS[i], entry, 'EX', ARGV[2])
    results[i - 2] = entry
  end
end
return results
"""
)
# KEYS: the ready mark. ARGV: the run_id of the server the caller caught up on, or ''.
MARK_READY = (
    "local server = " + SERVER_ID
    + """
if ARGV[1] ~= '' and ARGV[1] ~= server then
  return 0
end
redis.call('SET', KEYS[1], server)
return 1
"""
)


def timestamp(moment):
    """An instant as payloads write it: UTC, milliseconds, "Z"."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(event):
    """The event as clients see it (PROTOCOL.md, `event` frames and the HTTP API)."""
    actor = None
    if event.actor_id is not None:
        actor = {"id": event.actor_id, "username": event.actor.get_username()}
    target = None
    if event.target_type:
        target = {"type": event.target_type, "id": event.target_id, "repr": event.target_repr}
    payload = {
        "id": event.pk,
        "kind": event.kind,
        "title": event.title,
        "body": event.body,
        "url": event.url,
        "actor": actor,
        "target": target,
        "created_at": timestamp(event.created_at),
        "data": event.data,
    }
    if event.kind in OBJECT_KINDS:
        payload["group"] = event.burst or event.pk  # its burst's first event (bursts.py): events of one group share it
    if event.params is not None:
        payload["params"] = event.params  # what rendering.py writes its title and body from, in each reader's language
    return payload


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
    """The stream's server is not the one marked ready (see above): the outbox must go first."""


def publish(messages, catching_up=False, card=True):
    """
    Add messages to the stream, each unless it was published already, and record their
    positions on their rows (those of events published before too, where known); how many this
    call added. RedisError when Redis is unreachable; StreamNotReady when the stream is not ready
    and not `catching_up` (nothing is added: with no messages, this only asks whether it is
    ready). `card`: leave the site's card (deployment.py) beside them; relays, which are not the
    site, pass False.
    """
    redis = redisconf.connection()
    if card:
        execute_with_card(redis.pipeline(transaction=False))
    entries = [(each.event.pk, each.payload, each.routes, cursors.epoch_us(each.event.created_at)) for each in messages]
    results = redis.register_script(PUBLISH)(*publish_arguments(entries, catching_up))
    if results == NOT_READY:
        raise StreamNotReady
    positions = {}
    for each, result in zip(messages, results):
        position = _position(result[0] if isinstance(result, list) else result)
        if position is not None:
            each.event.stream_position = positions[each.event.pk] = position
    if positions:
        # Only where none is recorded yet: if this write comes late and the outbox has meanwhile
        # published the event again (Redis lost the first entry), the newer position stands.
        Event.objects.filter(pk__in=positions, stream_position__isnull=True).update(
            stream_position=Case(*(When(pk=pk, then=Value(position)) for pk, position in positions.items()))
        )
    return sum(not isinstance(result, list) for result in results)


def publish_arguments(entries, catching_up=False):
    """(KEYS, ARGV) of PUBLISH for [(event id, event JSON, routes JSON, created µs)]."""
    keys = [redisconf.stream_key(), ready_key()] + [published_key(event_id) for event_id, *_ in entries]
    args = [app_settings.NOTIFICATIONS_STREAM_MAXLEN, PUBLISHED_KEY_TTL, int(catching_up)]
    for entry in entries:
        args += entry
    return keys, args


def mark_ready(client, server=None):
    """Mark the stream ready on its server: only if that is still `server` (a run_id), when given."""
    return client.register_script(MARK_READY)([ready_key()], [server or ""])


def _position(entry_id):
    """The position of an entry ID the script returned; None for none, or for a published key
    that holds no ID (written by earlier versions, which stored '1')."""
    try:
        return cursors.position(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
    except cursors.BadCursor:
        return None
