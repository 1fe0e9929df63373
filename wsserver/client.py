"""
One authenticated connection: the topics it follows and its answers to commands.

Topics are authorized when subscribed to (in the ORM thread pool, through
notifications.authorization, the same rules as the Django side), then turned into the routes
the hub delivers by. Each subscribe loads the user afresh from the session, as Django does for
every request: permissions granted or withdrawn since the connection opened count, and a session
that has ended closes the socket. Nothing here runs per event.

Access is looked at again (recheck) when it may have changed: a control message about the user
or one of their groups (notifications.revocation), the session's expiry (a timer, once it is
near), and periodically for changes that send no signal (server.recheck_periodically). From the moment the relay learns of
a change until the re-check is applied, the connection's live frames are held, then released
less those of routes it may no longer follow. An authorization computed in a thread is applied
only if no change was learnt of while it was computed (`access_version`); otherwise it is
computed again: no grant decided before a revocation the relay has received is ever applied.

Resuming keeps the connection's sequence exact: from `welcome`, live events are held until the
client resumes (the replay goes first, then what was held, less what the replay covered), or
sends any other command than `subscribe` or `auth`, or WSSERVER_RESUME_WAIT seconds pass. A client that
subscribes and resumes right after `welcome` thus gets every missed event, in order, once, then
live ones. A resume that comes after live delivery began can no longer put older events first:
it is answered `resync` if anything before `welcome` was missed.
"""

import asyncio
import logging
import time

from django.db import DatabaseError

from notifications import cursors
from notifications.authorization import routes_for
from notifications.conf import app_settings
from notifications.presence import presence_route
from notifications.sessions import check_sessions
from notifications.topics import INBOX, TopicError, parse_topic

from . import metrics, protocol
from .hub import RECHECK, RESUME
from .replay import ReplayImpossible, Viewer, missed_frames
from .threads import run_sync

logger = logging.getLogger(__name__)

# How long a resume waits for this relay to reach a cursor another relay gave the client.
CATCH_UP_SECONDS = 1.0
# Seconds a replay may take, waiting for its turn included; longer: resync (live events wait meanwhile).
REPLAY_TIMEOUT = 30.0
# A session's expiry gets a timer once it is less than this many WSSERVER_RECHECK_INTERVALs
# away: the periodic re-check looks at every connection at least every two intervals, and sets
# the timer then (see Client._expire_at).
EXPIRY_TIMER_HORIZON = 3


def authorize_sessions(requests):
    """
    {session key: (SessionCheck, [(name, routes or TopicError)])} for {session key: topic names}:
    each session's current user (one query for all the sessions) and each topic name, canonical
    where it parses; no topics are judged for a session that no longer logs anyone in.
    """
    checks = check_sessions(list(requests))
    answers = {}
    for session_key, names in requests.items():
        check = checks[session_key]
        results = []
        if check.user is not None:
            for name in names:
                try:
                    topic = parse_topic(name)
                    results.append((topic.name, routes_for(check.user, topic)))
                except TopicError as error:
                    results.append((name, error))
        answers[session_key] = (check, results)
    return answers


def authorize_topics(session_key, names):
    """authorize_sessions for one session."""
    return authorize_sessions({session_key: names})[session_key]


def canonical_name(name):
    try:
        return parse_topic(name).name
    except TopicError:
        return name


class Client:
    def __init__(self, connection, identity, hub, redis, spawn, replays, presence=None):
        self.connection = connection
        self.presence = presence  # presence.Presence: who has the objects followed open
        self.identity = identity
        self.session_key = identity.session_key
        self.hub = hub
        self.redis = redis
        self.spawn = spawn  # runs a coroutine in the background (Relay.spawn)
        self.replays = replays  # limits.ReplayGate: what resumes may cost
        self.subscriptions = {}  # canonical topic name → routes it follows
        self.presence_topics = set()  # topics this socket announced itself on (it gets their presence frames)
        self.access_version = 0  # changes each time the relay learns access may have changed
        # While a re-check is pending, an Event set when it is over (see access_changed); made only
        # then: an asyncio.Event costs 0.9 KiB, on every idle socket (docs/performance.md).
        self._rechecked = None
        self.closed = False
        self._settle = None
        self._expiry = None
        self._welcome_position = 0
        self._rechecking = False

    async def start(self):
        """Follow the inbox, hold live events, then send `welcome` with the cursor they start after."""
        self._follow(INBOX, self.identity.inbox_routes)
        self.hub.joined(self.identity.joined_us)
        # No await between holding and reading the cursor: every event after it is held for us.
        cursor = self.hub.hold(self.connection, RESUME)
        self._welcome_position = cursors.position(cursor)
        loop = asyncio.get_running_loop()
        self._settle = loop.call_later(app_settings.WSSERVER_RESUME_WAIT, self._release)
        self._expire_at(self.identity.expires)
        identity = self.identity
        logger.debug("Welcome user %s at cursor %s, following %s", identity.user_id, cursor, list(self.subscriptions))
        await self.connection.send(protocol.welcome(identity.user_id, identity.username, list(self.subscriptions), cursor))

    def close(self):
        self.closed = True
        self._settled()
        self._cancel_settle()
        if self._expiry is not None:
            self._expiry.cancel()
        if self.presence is not None:
            self.presence.closed(self.connection)
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
        elif isinstance(command, protocol.Presence):
            await self.announce(canonical_name(command.topic), command.state, command.ref)
        elif isinstance(command, protocol.Ping):
            self._release()
            await self.connection.send(protocol.pong(command.ref))
        elif isinstance(command, protocol.Auth):
            # A client that always sends its ticket (the cookie authenticated it already) still
            # resumes next: this answer must not start live delivery before the replay.
            await self.connection.send(protocol.error("bad_request", "Already authenticated.", command.ref))
        return False

    async def subscribe(self, names, ref):
        new = [name for name in names if canonical_name(name) not in self.subscriptions]
        limit = app_settings.WSSERVER_MAX_TOPICS
        if len(self.subscriptions) + len(new) > limit:
            await self.connection.send(protocol.error("too_many_topics", f"At most {limit} topics per connection.", ref))
            return
        while True:  # until an authorization completes with no access change learnt of meanwhile
            version = self.access_version
            check, results = await run_sync(authorize_topics, self.session_key, new)
            if version == self.access_version:
                break
        if self.closed:
            return
        if check.user is None:
            await self.connection.close(protocol.SESSION_ENDED, "Session ended.")
            return
        for name, outcome in results:  # applied with no await since the version was compared
            if not isinstance(outcome, TopicError):
                self._follow(name, outcome)
        for name, outcome in results:
            if isinstance(outcome, TopicError):
                await self.connection.send(protocol.error(outcome.code, str(outcome), ref))
        accepted = list(dict.fromkeys(c for c in map(canonical_name, names) if c in self.subscriptions))
        if accepted:
            await self.connection.send(protocol.subscribed(accepted, ref))

    async def announce(self, topic, state, ref):
        """A `presence` command: this socket is viewing or editing an object it follows, or gone from it."""
        if self.presence is None:
            await self.connection.send(protocol.error("presence_disabled", "This relay keeps no presence.", ref))
            return
        refused = self.presence.refusal(self, topic)
        if refused is not None:
            await self.connection.send(protocol.error(*refused, ref))
            return
        # Decided with no await since the check: a revocation from here on finds the topic among
        # those announced on, and takes the entry away (_drop).
        first = state is not None and topic not in self.presence_topics
        if first:
            self.presence_topics.add(topic)
            self.hub.follow(self.connection, [presence_route(topic)])
        elif state is None and topic in self.presence_topics:
            self._stop_presence(topic)
        write = self.presence.announce(self, topic, state)
        try:
            await self.connection.send(protocol.announced(topic, state, ref))  # before the diff it causes
        finally:
            if write is not None:
                self.spawn(write)  # written even if the socket closed meanwhile (then removed after it)
        if first and topic in self.presence_topics:
            await self.presence.snapshot(self.connection, topic)

    def _stop_presence(self, topic):
        self.presence_topics.discard(topic)
        self.hub.unfollow(self.connection, [presence_route(topic)])

    async def unsubscribe(self, names, ref):
        names = list(dict.fromkeys(map(canonical_name, names)))
        if INBOX in names:
            await self.connection.send(protocol.error("bad_request", "The inbox is always subscribed.", ref))
            return
        for name in names:
            self._drop(name)
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
        if not self.hub.is_held(self.connection, RESUME):
            # Resumed after live delivery began: what came before `welcome` would now arrive
            # after newer events. Nothing missed: nothing to do; else the client reloads.
            if since < self._welcome_position:
                await self._resync()
            return
        try:
            async with asyncio.timeout(REPLAY_TIMEOUT), self.replays.admit(str(self.identity.user_id)):
                until, frames = await self._missed(since)
        except (ReplayImpossible, TimeoutError) as error:
            self._release()
            if getattr(error, "code", None):
                await self.connection.send(protocol.error(error.code, str(error), ref))
            await self._resync()
            return
        if frames:
            metrics.REPLAYS.inc()
            metrics.REPLAYED_EVENTS.inc(len(frames))
        for frame in frames:
            await self.connection.send(frame)
        if not self.closed and not self.hub.release(self.connection, RESUME, after=max(since, until)):
            await self._resync()

    async def _missed(self, since):
        """
        (until, frames): what was missed from `since` up to where this relay has read, on the
        routes followed once no access change is pending: computed again if one was learnt of
        meanwhile, so a replay never carries what a revocation the relay knows of took away.
        """
        while True:
            while self._rechecked is not None:
                await self._rechecked.wait()
            version = self.access_version
            until = cursors.position(self.hub.cursor)
            deadline = time.monotonic() + CATCH_UP_SECONDS
            while until < since and time.monotonic() < deadline:  # another relay was ahead of this one
                await asyncio.sleep(0.02)
                until = cursors.position(self.hub.cursor)
            viewer = Viewer(frozenset(self._all_routes()), self.identity.joined_us, self.hub.reader_of(self.connection))
            frames = await missed_frames(self.redis, self.hub.backlog, since, until, viewer, int(time.time() * 1000))
            if version == self.access_version:
                return until, frames

    def access_changed(self):
        """Access may have changed (a control message, the session's expiry): hold live frames and look again."""
        if self.closed:
            return
        self.access_version += 1
        if self._rechecked is None:
            self._rechecked = asyncio.Event()
        self.hub.hold(self.connection, RECHECK)
        self.spawn(self.recheck())

    async def recheck(self):
        """
        Look again at the session and the user as they are now (see access_changed), then deliver
        what was held meanwhile, less what may no longer be seen. Changes learnt of while one
        re-check runs are covered by looking again before it ends.
        """
        if self._rechecking:
            return  # the running one sees the version change and looks again
        self._rechecking = True
        try:
            while True:
                version = self.access_version
                check, results = await run_sync(authorize_topics, self.session_key, list(self.subscriptions))
                if self.closed or not await self.apply_recheck(check, results, "access", version):
                    return
                if version == self.access_version:
                    break
            self._rechecking = False  # from here, a new change starts a re-check of its own
            self._settled()
            if not self.hub.release(self.connection, RECHECK):
                await self._resync()
        except DatabaseError:
            # Whether access ended cannot be told: nothing more is delivered; the client comes back later.
            await self.connection.close(protocol.TRY_AGAIN_LATER, "Database unavailable: reconnect later.")
        except Exception:
            logger.exception("Could not re-check the access of user %s", self.identity.user_id)
            await self.connection.close(protocol.INTERNAL_ERROR, "Could not check access: reconnect.")
        finally:
            self._rechecking = False

    async def apply_recheck(self, check, results, cause, version):
        """
        Apply a re-check's answer, unless the connection closed or learnt of an access change
        since `version` (the answer may be stale: a newer look is due). An ended session closes
        the socket with 4003 (False); topics no longer allowed are unfollowed at once, then
        announced as unsubscribed; the others (the inbox's groups, model:*) are followed as they
        now expand.
        """
        if self.closed:
            return False
        if version != self.access_version:
            return True
        metrics.RECHECKS.labels(cause).inc()
        if check.user is None:
            await self.connection.close(protocol.SESSION_ENDED, "Session ended.")
            return False
        revoked = []
        for name, outcome in results:
            if name not in self.subscriptions:
                continue  # unsubscribed while we looked
            if isinstance(outcome, TopicError):
                self._drop(name)
                revoked.append(name)
            else:
                self._follow(name, outcome)
        self.hub.keep_held_only(self.connection, self._all_routes())
        self._expire_at(check.expires.timestamp() if check.expires else None)
        if revoked:
            await self.connection.send(protocol.unsubscribed(revoked, "permission_revoked"))
        return True

    def _expire_at(self, expires):
        """
        Look again when the session expires (a session extended meanwhile is looked at again
        then). An expiry further off than EXPIRY_TIMER_HORIZON re-check intervals gets no timer
        yet: a periodic re-check comes back here (apply_recheck) before it is near. Sessions
        last weeks, and a timer costs 0.6 KiB on every socket (docs/performance.md).
        """
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        interval = app_settings.WSSERVER_RECHECK_INTERVAL
        if expires is not None and (not interval or expires - time.time() < EXPIRY_TIMER_HORIZON * interval):
            loop = asyncio.get_running_loop()
            delay = max(0.0, expires - time.time())
            self._expiry = loop.call_later(delay, self.access_changed)

    def _settled(self):
        """No re-check is pending any more: wake what waits for it (_missed)."""
        if self._rechecked is not None:
            self._rechecked.set()
            self._rechecked = None

    async def _resync(self):
        metrics.RESYNCS.inc()
        await self.connection.send(protocol.resync())

    def _release(self):
        """Deliver live from now on, after what was held; resync if the hold overflowed."""
        self._cancel_settle()
        if self.hub.is_held(self.connection, RESUME) and not self.hub.release(self.connection, RESUME):
            self.spawn(self._resync())

    def _cancel_settle(self):
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None

    def _follow(self, name, routes):
        self._unfollow(name)
        self.subscriptions[name] = frozenset(routes)
        self.hub.follow(self.connection, routes)
        metrics.SUBSCRIPTIONS.inc()

    def _drop(self, name):
        """Stop following a topic for good (unsubscribed, or no longer allowed): its presence goes too."""
        if name in self.presence_topics:
            self._stop_presence(name)
            self.presence.left(self.connection, name)
        self._unfollow(name)

    def _unfollow(self, name):
        routes = self.subscriptions.pop(name, None)
        if routes is not None:
            metrics.SUBSCRIPTIONS.dec()
            self.hub.unfollow(self.connection, routes - self._all_routes())

    def _all_routes(self):
        """The routes followed: the topics' and the presence routes of the topics announced on."""
        routes = frozenset().union(*self.subscriptions.values())
        return routes.union(map(presence_route, self.presence_topics)) if self.presence_topics else routes
