"""
The relay's Prometheus metrics, served at /metrics on its port (prometheus-client).

With several workers (`runwsserver --workers N`), each worker records into files in
PROMETHEUS_MULTIPROC_DIR, which the command sets for them, and whichever worker answers a scrape
reports the sum over all of them (prometheus-client's multiprocess mode); with one, the default
registry is used.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CONNECTIONS = Gauge("wsserver_connections", "Open authenticated WebSocket connections.", multiprocess_mode="livesum")
SUBSCRIPTIONS = Gauge("wsserver_subscriptions", "Topics followed, over all connections.", multiprocess_mode="livesum")
EVENTS = Counter("wsserver_events_received", "Events read from Redis (or recovered from the database).")
DELIVERIES = Counter("wsserver_deliveries", "Event frames sent (or held) for connections, one per connection and event.")
EVENT_LAG = Histogram(
    "wsserver_event_lag_seconds",
    "From an event's publication in Redis to its delivery by this relay.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REPLAYS = Counter("wsserver_replays", "Resumes answered with a replay.")
REPLAYED_EVENTS = Counter("wsserver_replayed_events", "Event frames sent by replays.")
RESYNCS = Counter("wsserver_resyncs", "resync answers (missed events could not be replayed).")
SLOW_CLIENT_CLOSES = Counter("wsserver_slow_client_closes", "Connections closed (1013) for being too slow to keep up.")
REFUSED = Counter("wsserver_refused", "Connections or messages refused.", ["reason"])
REDIS_RECONNECTS = Counter("wsserver_redis_reconnects", "Times the reader got Redis back after losing it.")
REDIS_UP = Gauge("wsserver_redis_up", "1 while the reader is connected to Redis.", multiprocess_mode="livemin")
OUTBOX_PUBLISHED = Counter("wsserver_outbox_published", "Events this relay published from the outbox.")
PROBLEMS = Gauge(
    "wsserver_problem",
    "1 while a check fails (wsserver.health: database, migrations, secret_key, site_database, site_redis, redis).",
    ["check"],
    multiprocess_mode="livemax",
)
PUSHES = Counter("wsserver_pushes", "Web Push messages by outcome: delivered, gone (subscription deleted), failed (given up), retried.", ["outcome"])
PUSH_SKIPPED = Counter(
    "wsserver_push_skipped", "Addressees with a device an event was not pushed to, by reason: push_off, muted, online, rate_limited.", ["reason"]
)
RECHECKS = Counter("wsserver_rechecks", "Connections re-checked (access changed, session expiry, periodic).", ["cause"])


def render():
    """(body, content type) of the metrics, summed over workers when there are several."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
