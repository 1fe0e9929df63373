"""
One authenticated connection: the topics it follows and its answers to commands.

Topics are authorized when subscribed to (in the ORM thread pool, through
notifications.authorization, the same rules as the Django side), then turned into the routes
the hub delivers by. Each subscribe loads the user afresh from the session, as Django does for
every request: permissions granted or withdrawn since the connection opened count, and a session
that has ended closes the socket. Nothing here runs per event.
"""

from notifications.authorization import routes_for
from notifications.conf import app_settings
from notifications.sessions import user_for_session_key
from notifications.topics import INBOX, TopicError, parse_topic

from . import protocol
from .threads import run_sync

SESSION_ENDED = 4003


def authorize_topics(session_key, names):
    """
    (user, [(name, routes or TopicError)]) for the session's current user and each topic name,
    canonical where it parses; (None, []) when the session no longer logs anyone in.
    """
    user = user_for_session_key(session_key)
    if user is None:
        return None, []
    results = []
    for name in names:
        try:
            topic = parse_topic(name)
            results.append((topic.name, routes_for(user, topic)))
        except TopicError as error:
            results.append((name, error))
    return user, results


def canonical_name(name):
    try:
        return parse_topic(name).name
    except TopicError:
        return name


class Client:
    def __init__(self, connection, identity, hub):
        self.connection = connection
        self.user = identity.user
        self.session_key = identity.session_key
        self.hub = hub
        self.subscriptions = {}  # canonical topic name → routes it follows

    async def start(self):
        """Follow the inbox, then send `welcome` with the cursor live delivery starts after."""
        self._follow(INBOX, await run_sync(routes_for, self.user, parse_topic(INBOX)))
        # No await between following and reading the cursor: every event after it reaches us.
        welcome = protocol.welcome(self.user.pk, self.user.get_username(), list(self.subscriptions), self.hub.cursor)
        await self.connection.send(welcome)

    def close(self):
        self.hub.unfollow(self.connection, self._all_routes())
        self.subscriptions.clear()

    async def handle(self, frame):
        try:
            command = protocol.parse(frame, app_settings.WSSERVER_MAX_TOPICS)
        except protocol.ProtocolError as error:
            await self.connection.send(protocol.error(error.code, str(error), error.ref))
            return
        if isinstance(command, protocol.Subscribe):
            await self.subscribe(command.topics, command.ref)
        elif isinstance(command, protocol.Unsubscribe):
            await self.unsubscribe(command.topics, command.ref)
        elif isinstance(command, protocol.Ping):
            await self.connection.send(protocol.pong(command.ref))
        elif isinstance(command, protocol.Resume):
            # Missed events are not replayed by this relay: the client reloads over HTTP.
            await self.connection.send(protocol.resync())
        elif isinstance(command, protocol.Auth):
            await self.connection.send(protocol.error("bad_request", "Already authenticated.", command.ref))

    async def subscribe(self, names, ref):
        new = [name for name in names if canonical_name(name) not in self.subscriptions]
        limit = app_settings.WSSERVER_MAX_TOPICS
        if len(self.subscriptions) + len(new) > limit:
            await self.connection.send(protocol.error("too_many_topics", f"At most {limit} topics per connection.", ref))
            return
        user, results = await run_sync(authorize_topics, self.session_key, new)
        if user is None:
            await self.connection.close(SESSION_ENDED, "Session ended.")
            return
        for name, outcome in results:
            if isinstance(outcome, TopicError):
                await self.connection.send(protocol.error(outcome.code, str(outcome), ref))
            else:
                self._follow(name, outcome)
        accepted = list(dict.fromkeys(c for c in map(canonical_name, names) if c in self.subscriptions))
        if accepted:
            await self.connection.send(protocol.subscribed(accepted, ref))

    async def unsubscribe(self, names, ref):
        names = list(dict.fromkeys(map(canonical_name, names)))
        if INBOX in names:
            await self.connection.send(protocol.error("bad_request", "The inbox is always subscribed.", ref))
            return
        for name in names:
            self._unfollow(name)
        await self.connection.send(protocol.unsubscribed(names, "requested", ref))

    def _follow(self, name, routes):
        self._unfollow(name)
        self.subscriptions[name] = frozenset(routes)
        self.hub.follow(self.connection, routes)

    def _unfollow(self, name):
        routes = self.subscriptions.pop(name, None)
        if routes:
            self.hub.unfollow(self.connection, routes - self._all_routes())

    def _all_routes(self):
        return frozenset().union(*self.subscriptions.values())
