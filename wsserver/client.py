"""
One authenticated connection: the topics it follows and its answers to commands.

Topics are authorized when subscribed to (in the ORM thread pool, through
notifications.authorization, the same rules as the Django side), then turned into the routes
the hub delivers by. Each subscribe loads the user afresh from the session, as Django does for
every request: permissions granted or withdrawn since the connection opened count, and a session
that has ended closes the socket. Nothing here runs per event.

Resuming keeps the connection's sequence exact: from `welcome`, live events are held until the
client resumes (the replay goes first, then what was held, less what the replay covered), or
sends any other command than `subscribe`, or WSSERVER_RESUME_WAIT seconds pass. A client that
subscribes and resumes right after `welcome` thus gets every missed event, in order, once, then
live ones. A resume that comes after live delivery began can no longer put older events first:
it is answered `resync` if anything before `welcome` was missed.
"""

import asyncio
import logging
import time

from notifications import cursors
from notifications.authorization import routes_for
from notifications.conf import app_settings
from notifications.sessions import user_for_session_key
from notifications.topics import INBOX, TopicError, parse_topic

from . import metrics, protocol
from .replay import ReplayImpossible, missed_frames
from .threads import run_sync

logger = logging.getLogger(__name__)

SESSION_ENDED = 4003
# How long a resume waits for this relay to reach a cursor another relay gave the client.
CATCH_UP_SECONDS = 1.0


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
    def __init__(self, connection, identity, hub, redis):
        self.connection = connection
        self.identity = identity
        self.session_key = identity.session_key
        self.hub = hub
        self.redis = redis
        self.subscriptions = {}  # canonical topic name → routes it follows
        self._settle = None
        self._welcome_position = 0
        self._rechecking = self._recheck_again = False

    async def start(self):
        """Follow the inbox, hold live events, then send `welcome` with the cursor they start after."""
        self._follow(INBOX, self.identity.inbox_routes)
        # No await between holding and reading the cursor: every event after it is held for us.
        cursor = self.hub.hold(self.connection)
        self._welcome_position = cursors.position(cursor)
        self._settle = asyncio.get_running_loop().call_later(app_settings.WSSERVER_RESUME_WAIT, self._release)
        identity = self.identity
        logger.debug("Welcome user %s at cursor %s, following %s", identity.user_id, cursor, list(self.subscriptions))
        await self.connection.send(protocol.welcome(identity.user_id, identity.username, list(self.subscriptions), cursor))

    def close(self):
        self._cancel_settle()
        self.hub.forget(self.connection)
        self.hub.unfollow(self.connection, self._all_routes())
        metrics.SUBSCRIPTIONS.dec(len(self.subscriptions))
        self.subscriptions.clear()

    async def handle(self, frame):
        """Answer one frame; True when it was malformed (limits.FloodGuard counts those)."""
        try:
            command = protocol.parse(frame, app_settings.WSSERVER_MAX_TOPICS)
        except protocol.ProtocolError as error:
            self._release()
            await self.connection.send(protocol.error(error.code, str(error), error.ref))
            return True
        if isinstance(command, protocol.Subscribe):
            await self.subscribe(command.topics, command.ref)
        elif isinstance(command, protocol.Resume):
            await self.resume(command.cursor, command.ref)
        elif isinstance(command, protocol.Unsubscribe):
            self._release()
            await self.unsubscribe(command.topics, command.ref)
        elif isinstance(command, protocol.Ping):
            self._release()
            await self.connection.send(protocol.pong(command.ref))
        elif isinstance(command, protocol.Auth):
            await self.connection.send(protocol.error("bad_request", "Already authenticated.", command.ref))
        return False

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
        self.hub.keep_held_only(self.connection, self._all_routes())
        await self.connection.send(protocol.unsubscribed(names, "requested", ref))

    async def resume(self, cursor, ref):
        """Replay what was missed after `cursor` on the followed topics, then what was held."""
        self._cancel_settle()
        try:
            since = cursors.position(cursor)
        except cursors.BadCursor as error:
            self._release()
            await self.connection.send(protocol.error("bad_request", str(error), ref))
            return
        if not self.hub.is_held(self.connection):
            # Resumed after live delivery began: what came before `welcome` would now arrive
            # after newer events. Nothing missed: nothing to do; else the client reloads.
            if since < self._welcome_position:
                await self._resync()
            return
        until = cursors.position(self.hub.cursor)
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while until < since and time.monotonic() < deadline:  # another relay was ahead of this one
            await asyncio.sleep(0.02)
            until = cursors.position(self.hub.cursor)
        try:
            frames = await missed_frames(self.redis, since, until, self._all_routes(), int(time.time() * 1000))
        except ReplayImpossible:
            self._release()
            await self._resync()
            return
        if frames:
            metrics.REPLAYS.inc()
            metrics.REPLAYED_EVENTS.inc(len(frames))
        for frame in frames:
            await self.connection.send(frame)
        if not self.hub.release(self.connection, after=max(since, until)):
            await self._resync()

    async def recheck(self):
        """
        Look again at the session and the user as they are now (access changed, see
        notifications.revocation): an ended session closes the socket with 4003; topics no
        longer allowed are unfollowed at once, then announced as unsubscribed; the others
        (the inbox's groups, model:*) are followed as they now expand.
        """
        if self._rechecking:
            self._recheck_again = True  # the running check will look once more when done
            return
        self._rechecking = True
        try:
            self._recheck_again = True
            while self._recheck_again:
                self._recheck_again = False
                user, results = await run_sync(authorize_topics, self.session_key, list(self.subscriptions))
                if user is None:
                    await self.connection.close(SESSION_ENDED, "Session ended.")
                    return
                revoked = []
                for name, outcome in results:
                    if name not in self.subscriptions:
                        continue  # unsubscribed while we looked
                    if isinstance(outcome, TopicError):
                        self._unfollow(name)
                        revoked.append(name)
                    else:
                        self._follow(name, outcome)
                self.hub.keep_held_only(self.connection, self._all_routes())
                if revoked:
                    await self.connection.send(protocol.unsubscribed(revoked, "permission_revoked"))
        finally:
            self._rechecking = False

    async def _resync(self):
        metrics.RESYNCS.inc()
        await self.connection.send(protocol.resync())

    def _release(self):
        """Deliver live from now on, after what was held; resync if the hold overflowed."""
        self._cancel_settle()
        if self.hub.is_held(self.connection) and not self.hub.release(self.connection):
            asyncio.get_running_loop().create_task(self._resync())

    def _cancel_settle(self):
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None

    def _follow(self, name, routes):
        self._unfollow(name)
        self.subscriptions[name] = frozenset(routes)
        self.hub.follow(self.connection, routes)
        metrics.SUBSCRIPTIONS.inc()

    def _unfollow(self, name):
        routes = self.subscriptions.pop(name, None)
        if routes is not None:
            metrics.SUBSCRIPTIONS.dec()
            self.hub.unfollow(self.connection, routes - self._all_routes())

    def _all_routes(self):
        return frozenset().union(*self.subscriptions.values())
