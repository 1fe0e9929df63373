"""
Who is pushed an event, decided once for every relay (wsserver/push.py reads each entry of the
events stream in one relay only).

Only inbox events are pushed (notify(), announce(): routes `inbox:user:N`, `inbox:group:G`,
`inbox:all`, `inbox:staff`); admin and model activity is for open pages. An addressee gets it on
each of their devices when all of these hold:
- the event is in their feed: an active user, who joined before it (feed.py says the same);
- their preferences have push on, and do not mute the event's kind or topics (preferences.py);
- they have no socket open on any relay (online.py): an open page shows the event already;
- they were pushed fewer than NOTIFICATIONS_PUSH_RATE events in the last minute, counted in Redis
  over every relay.
One query per event for its subscriptions, then one for the preferences of each thousand users
who have one; none for an event no addressee has a device for.
"""

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from .. import redisconf
from ..conf import app_settings
from ..models import Audience, PushSubscription
from ..online import connected_users
from ..preferences import choices_of, event_topics
from ..publishing import decode_message
from . import sending
from .subscriptions import endpoint_allowed

RATE_WINDOW = 60
# Users whose preferences, sockets and rate are looked up at once (an announcement reaches everyone).
USERS_AT_ONCE = 1000


@dataclass
class Plan:
    """The pushes an event makes, and how many addressees with a device were left out, by reason."""

    event_id: int
    deliveries: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)

    def skip(self, reason, users):
        if users:
            self.skipped[reason] = self.skipped.get(reason, 0) + len(users)


def addressees(routes):
    """(user ids, group ids, audiences) of an event's inbox routes; all empty for an object event."""
    users, groups, audiences = [], [], []
    for route in routes:
        prefix, _, rest = route.partition(":")
        kind, _, pk = rest.partition(":")
        if prefix != "inbox":
            continue
        if kind == "user" and pk.isdigit():
            users.append(int(pk))
        elif kind == "group" and pk.isdigit():
            groups.append(int(pk))
        elif rest in Audience.values:
            audiences.append(rest)
    return users, groups, audiences


def subscriptions_for(users, groups, audiences, created_at):
    """The subscriptions of the addressees' devices the event may be pushed to."""
    user_model = get_user_model()
    fields = {each.name for each in user_model._meta.get_fields()}
    addressed = Q(user_id__in=users)
    if groups and "groups" in fields:
        members = user_model.groups.through.objects.filter(group_id__in=groups).values(user_model.groups.field.m2m_field_name())
        addressed |= Q(user_id__in=members)
    if Audience.ALL in audiences:
        addressed = Q()
    elif Audience.STAFF in audiences and "is_staff" in fields:
        addressed |= Q(user__is_staff=True)
    subscriptions = PushSubscription.objects.filter(addressed).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    if "is_active" in fields:
        subscriptions = subscriptions.filter(user__is_active=True)
    if "date_joined" in fields:
        subscriptions = subscriptions.filter(user__date_joined__lte=created_at)
    return subscriptions.order_by("pk")


def plan(fields):
    """The Plan of a stream entry's fields (as the relay reads them: str)."""
    event_id, routes, event_json, created_us = decode_message(fields)
    result = Plan(event_id)
    users, groups, audiences = addressees(routes)
    if not (users or groups or audiences):
        return result
    created = time.time() if created_us is None else created_us / 1e6
    if time.time() - created > app_settings.NOTIFICATIONS_PUSH_TTL:
        return result  # read too late (the relays were down): its push would have expired
    rows = subscriptions_for(users, groups, audiences, datetime.fromtimestamp(created, dt_timezone.utc))
    # Checked again here: NOTIFICATIONS_PUSH_SERVICES may have lost a service since a device subscribed.
    subscriptions = [row for row in rows.values_list("pk", "user_id", "endpoint", "p256dh", "auth") if endpoint_allowed(row[2])]
    if not subscriptions:
        return result
    event = json.loads(event_json)
    addressed = sorted({row[1] for row in subscriptions})
    wanted = set()
    for start in range(0, len(addressed), USERS_AT_ONCE):
        wanted |= _wanted(event, set(addressed[start : start + USERS_AT_ONCE]), result)
    message, urgency, topic = sending.message(event), sending.urgency(event), sending.topic(event)
    result.deliveries = [
        sending.Delivery(pk, user_id, endpoint, p256dh, auth, message, urgency, topic)
        for pk, user_id, endpoint, p256dh, auth in subscriptions
        if user_id in wanted
    ]
    return result


def _wanted(event, user_ids, result):
    """Those of these users to push the event to now: wanting it, with no socket open, under the rate."""
    wanted = _wanting(event, user_ids, result)
    if not wanted:
        return wanted
    redis = redisconf.connection()
    online = connected_users(wanted, redis)
    result.skip("online", online)
    return _within_rate(redis, wanted - online, result)


def _wanting(event, user_ids, result):
    """Those users whose preferences want this event pushed."""
    target = event.get("target") or {}
    topics = event_topics(target.get("type"), target.get("id"))
    choices = choices_of(user_ids)
    push_off = {pk for pk in user_ids if not choices[pk].push}
    muted = {pk for pk in user_ids - push_off if choices[pk].mutes.matches(event.get("kind"), topics)}
    result.skip("push_off", push_off)
    result.skip("muted", muted)
    return user_ids - push_off - muted


def rate_key(user_id):
    """The user's recent pushes, named after the stream (one Cluster slot with it, so one script sees them all)."""
    return f"{redisconf.stream_key()}:push-rate:{user_id}"


# A sliding window: each key is a sorted set of the user's pushes in the last window, scored by
# the time on Redis's clock (one clock for every relay). KEYS: the users' keys. ARGV: the rate,
# the window in ms, a nonce. Returns 1 (pushed now, and counted) or 0 (over the rate) per key.
RATE_SCRIPT = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local answers = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[2]))
  if redis.call('ZCARD', key) < tonumber(ARGV[1]) then
    redis.call('ZADD', key, now, ARGV[3] .. ':' .. i)
    redis.call('PEXPIRE', key, ARGV[2])
    answers[i] = 1
  else
    answers[i] = 0
  end
end
return answers
"""


def _within_rate(redis, user_ids, result):
    """Those users pushed fewer than NOTIFICATIONS_PUSH_RATE events in the last minute, each counted once more."""
    if not user_ids:
        return set()
    ordered = sorted(user_ids)
    answers = redis.register_script(RATE_SCRIPT)(
        [rate_key(pk) for pk in ordered], [app_settings.NOTIFICATIONS_PUSH_RATE, RATE_WINDOW * 1000, uuid.uuid4().hex]
    )
    over = {pk for pk, allowed in zip(ordered, answers) if not allowed}
    result.skip("rate_limited", over)
    return user_ids - over
