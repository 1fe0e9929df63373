"""
The outbox: committed events that were never published, and publishing them.

An event is stored in its transaction and published after it commits (publishing.py). When
Redis is unreachable at that moment, or the process dies in between, the event is committed but
has no stream position: it waits here. Every relay process drains it once a second (after a short
grace period that leaves fresh commits to their own publisher); publishing is once-only, so any
number of relays and Django processes may try at the same time.
"""

from datetime import timedelta

from django.utils import timezone

from .models import Event
from .publishing import message, publish, stored_routes

GRACE = timedelta(seconds=1)
BATCH = 500


def pending(limit=BATCH):
    """The oldest committed events still waiting to be published."""
    return list(
        Event.objects.filter(stream_position__isnull=True, created_at__lte=timezone.now() - GRACE)
        .select_related("actor")
        .prefetch_related("recipients")
        .order_by("pk")[:limit]
    )


def drain(limit=BATCH):
    """Publish up to `limit` waiting events; how many this call published."""
    return publish([message(event, stored_routes(event)) for event in pending(limit)])
