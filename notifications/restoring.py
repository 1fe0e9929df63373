"""
Putting back, under their own IDs, the newest entries a stream lost after their positions were
recorded.

Redis replication is asynchronous: a replica that a failover promotes (Sentinel, Cluster) may
lack the old primary's last entries, and a Redis restarted from a snapshot lacks what came after
the snapshot. The database still knows those events and where they were: each position is
recorded once Redis acknowledged its XADD. Readers and replays (wsserver) take from the database
what a stream lost *before its oldest entry*; entries lost at its *newest end* would instead be a
hole beneath the entries added after them, and be skipped. So before anything new is added to
such a stream (it is not ready, see publishing.py), catch-up puts them back where they were: an
XADD with each one's own ID, which is still above the stream's newest entry, and its fields. A
relay that delivered them before the failover reads on after them; one that did not, and every
replay, finds them in their place.

An empty stream lost everything: nothing is put back, the database serves all of it (as it
does after Redis restarted without its data).
"""

from . import cursors, redisconf
from .conf import app_settings
from .models import Event
from .publishing import PUBLISHED_KEY_TTL, SERVER_ID, message, published_key, stored_routes

BATCH = 500
# Batches one catch-up puts back at most: past that, the next catch-up goes on.
MAX_BATCHES = 100
# KEYS: the stream, then each entry's published key. ARGV: MAXLEN, the published keys' TTL, then
# five per entry: its ID, id, event, routes, at. An entry the stream already reaches past (put
# back by another process meanwhile) is left out. Returns the server's run_id.
RESTORE = (
    """
for i = 2, #KEYS do
  local at = 5 * i - 7
  local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[at],
    'id', ARGV[at + 1], 'event', ARGV[at + 2], 'routes', ARGV[at + 3], 'at', ARGV[at + 4])
  if type(added) == 'string' then
    redis.call('SET', KEYS[i], added, 'EX', ARGV[2])
  end
end
return """
    + SERVER_ID
)


def restore_lost_entries():
    """
    Put back every entry the database records beyond the stream's newest one. The run_id of the
    server it did so on, for marking the stream ready there; None when more is left than one
    call puts back.
    """
    client = redisconf.connection()
    script = client.register_script(RESTORE)
    newest = client.xrevrange(redisconf.stream_key(), count=1)
    after = cursors.position(_text(newest[0][0])) if newest else None
    for _ in range(MAX_BATCHES):
        lost = [] if after is None else _recorded_after(after)
        server = _text(script(*_restore_arguments(lost)))
        if len(lost) < BATCH:
            return server
        after = lost[-1].stream_position
    return None


def _recorded_after(position):
    events = Event.objects.filter(stream_position__gt=position).select_related("actor").prefetch_related("recipients")
    return list(events.order_by("stream_position")[:BATCH])


def _restore_arguments(events):
    keys = [redisconf.stream_key()] + [published_key(event.pk) for event in events]
    args = [app_settings.NOTIFICATIONS_STREAM_MAXLEN, PUBLISHED_KEY_TTL]
    for event in events:
        published = message(event, stored_routes(event))
        args += [cursors.cursor(event.stream_position), event.pk, published.payload, published.routes, cursors.epoch_us(event.created_at)]
    return keys, args


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
