"""
The app's settings and their defaults, in one place.

Read them through `app_settings.NAME` rather than `django.conf.settings`, so every module sees
the same defaults and tests can change them with `override_settings`.
"""

from django.conf import settings

# Where the relay accepts WebSocket connections (part of the contract, not a setting).
WEBSOCKET_PATH = "/ws/"

DEFAULTS = {
    # The Redis that carries the events (notifications.redisconf): this URL when set, else the
    # Redis cache of this alias (Django's RedisCache or django-redis).
    "NOTIFICATIONS_REDIS_URL": "",
    "NOTIFICATIONS_REDIS_ALIAS": "default",
    # Redis stream that carries events from Django to every relay process.
    "NOTIFICATIONS_STREAM_KEY": "notifications:events",
    # Directory of the bundled development Redis (notifications.devredis) that development
    # commands start when it is not running; None when REDIS_URL names a real server.
    "NOTIFICATIONS_BUNDLED_REDIS_DIR": None,
    # Approximate number of events the stream retains for relays and resuming clients.
    "NOTIFICATIONS_STREAM_MAXLEN": 10_000,
    # How far back (seconds) a reconnecting client's missed events are replayed; older: resync.
    "NOTIFICATIONS_REPLAY_WINDOW": 24 * 3600,
    # "app_label.ModelName" of models whose saves and deletes publish model.* events.
    "NOTIFICATIONS_TRACK_MODELS": [],
    # Lifetime of a WebSocket ticket, in seconds.
    "NOTIFICATIONS_TICKET_MAX_AGE": 60,
    # Who may ask for a ticket (notifications.ticketauth): dotted paths of Django REST framework
    # authentication classes or of callables `request -> user or None`, tried in order.
    "NOTIFICATIONS_TICKET_AUTHENTICATION": ["notifications.ticketauth.session_user"],
    # Seconds the session opened for a ticket asked with an API token lasts: its sockets are
    # closed (4003) after that, and the client asks for a new ticket with its token.
    "NOTIFICATIONS_API_SESSION_AGE": 3600,
    # Defaults of every user's preferences (notifications.preferences), over the built-in ones:
    # {"toasts": True, "digest": "off", "push": True, "language": "", "muted_kinds": [], "muted_topics": []}.
    "NOTIFICATIONS_PREFERENCES": {},
    # Web Push (notifications.webpush): the site's VAPID key pair, as `manage.py generate_vapid_keys`
    # prints it (base64url: the raw 32-byte private key, the 65-byte uncompressed public key), and
    # the contact push services may write to ("mailto:ops@example.com" or "https://..."). Without
    # the keys, nothing is pushed and the push-subscriptions endpoint answers 404 push_disabled.
    "NOTIFICATIONS_VAPID_PUBLIC_KEY": "",
    "NOTIFICATIONS_VAPID_PRIVATE_KEY": "",
    "NOTIFICATIONS_VAPID_SUBJECT": "",
    # Pushes a minute one user may receive, counted over every relay (more: not pushed).
    "NOTIFICATIONS_PUSH_RATE": 10,
    # Seconds a push service keeps a message for a device that is offline; events older than this
    # when a relay reads them (relays were down) are not pushed.
    "NOTIFICATIONS_PUSH_TTL": 24 * 3600,
    # Whether logging out ends the push subscriptions made in that login (webpush.lifetime): a
    # shared computer then stops showing the pushes of whoever logged out.
    "NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT": True,
    # Origins of the push services subscriptions may name ("https://*.example.com": any subdomain).
    # The relay POSTs to a subscription's endpoint: a user must not be able to point it at a
    # service inside your network.
    "NOTIFICATIONS_PUSH_SERVICES": [
        "https://fcm.googleapis.com",
        "https://updates.push.services.mozilla.com",
        "https://web.push.apple.com",
        "https://*.notify.windows.com",
    ],
    # The site's address ("https://www.example.com"), for the absolute links of emails: each
    # notification's, the site's, and the unsubscribe link (RFC 8058 wants https).
    "NOTIFICATIONS_SITE_URL": "",
    # Email digests (notifications.digests, `manage.py send_notification_digests`): the sender
    # (None: DEFAULT_FROM_EMAIL), the most notifications one email lists (the rest are counted),
    # the seconds a run holds a batch of users before another run may take them over, and
    # whether a user with a live socket right now is left for a later run.
    "NOTIFICATIONS_DIGEST_FROM_EMAIL": None,
    "NOTIFICATIONS_DIGEST_MAX_ITEMS": 50,
    "NOTIFICATIONS_DIGEST_LEASE": 600,
    "NOTIFICATIONS_DIGEST_SKIP_CONNECTED": True,
    # Whether sockets may announce themselves on object topics and see who else has the object
    # open (notifications.presence; the `presence` command and frames of protocol.md).
    "NOTIFICATIONS_PRESENCE": True,
    # Seconds within which an actor's events of one kind about one model form one group (a
    # burst: "bob changed 50 orders", notifications.bursts), counted from the group's first event;
    # None or 0: no grouping, every event is a group of its own.
    "NOTIFICATIONS_GROUP_WINDOW": 60,
    # ws:// or wss:// URL browsers use to reach the relay; empty: derived from the request host.
    "WSSERVER_PUBLIC_URL": "",
    # Port the derived WSSERVER_PUBLIC_URL points at (runwsserver's default port).
    "WSSERVER_PORT": 8765,
    # Full origins ("https://app.example.com") allowed to open cookie-authenticated sockets,
    # in addition to the hosts of ALLOWED_HOSTS.
    "WSSERVER_ALLOWED_ORIGINS": [],
    # Seconds a ticket-mode client has to send its `auth` message.
    "WSSERVER_AUTH_TIMEOUT": 10,
    # Largest frame a client may send, in bytes.
    "WSSERVER_MAX_MESSAGE_SIZE": 64 * 1024,
    # Bytes a connection may have waiting to be sent before it is closed as too slow (1013).
    "WSSERVER_MAX_BUFFER": 1024 * 1024,
    # Seconds live events wait after `welcome` for the client's `resume` (it ends the wait, as
    # does any command but `subscribe`), so a replay can come first.
    "WSSERVER_RESUME_WAIT": 1.0,
    # Messages a second one connection may send, and in what burst (over: rate_limited, then 1008).
    "WSSERVER_RATE": 10,
    "WSSERVER_BURST": 30,
    # Open connections per user and per client IP address, on each relay process (over: 1013).
    "WSSERVER_MAX_CONNECTIONS_PER_USER": 20,
    "WSSERVER_MAX_CONNECTIONS_PER_IP": 500,
    # Header carrying the client's address when the relay runs behind a proxy that sets it
    # (e.g. "X-Forwarded-For", its last address); None: the peer address of the socket.
    "WSSERVER_CLIENT_IP_HEADER": None,
    # permessage-deflate (RFC 7692) with the clients that offer it: fewer bytes on the wire, for
    # CPU per delivery and memory per connection (wsserver/compression.py, docs/performance.md).
    "WSSERVER_COMPRESSION": False,
    # Seconds between keepalive pings to each connection; one that has not answered its ping by
    # the next is closed (1011). None: no pings.
    "WSSERVER_PING_INTERVAL": 20,
    # Seconds the opening handshake (HTTP upgrade) may take before the connection is dropped.
    "WSSERVER_HANDSHAKE_TIMEOUT": 10,
    # Most topics one connection may hold.
    "WSSERVER_MAX_TOPICS": 100,
    # Replays (resumes) a second per user, per relay process, and in what burst (over: rate_limited, then resync).
    "WSSERVER_REPLAY_RATE": 1.0,
    "WSSERVER_REPLAY_BURST": 20,
    # Seconds between re-checks of every open connection's session and permissions, for changes
    # that send no signal (QuerySet.update(), raw SQL, rows deleted in bulk); None: never.
    "WSSERVER_RECHECK_INTERVAL": 300,
    # "host:port" where the relay serves /metrics and the detailed /healthz; None: /metrics on
    # the public port (and the detailed health nowhere but the log and the metrics).
    "WSSERVER_METRICS_ADDRESS": None,
}


class AppSettings:
    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown notifications setting {name!r}.")
        return getattr(settings, name, DEFAULTS[name])


app_settings = AppSettings()
