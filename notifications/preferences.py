"""
What each user chose about being notified, and what follows from it for an event.

A user can mute kinds (`model.updated`) and topics (`model:shop.order`, or one object:
`object:shop.order:5`), and choose per channel: live toasts on or off, an email digest (off,
hourly, daily, weekly), push to their devices on or off. A muted event is neither toasted, nor
emailed, nor pushed, and stays in the feed. What a user left unset follows the site's defaults
(NOTIFICATIONS_PREFERENCES), read at the moment they apply.

Every channel asks the same question here (Mutes.matches), so muting means one thing. The
relay asks it with no query: it loads the mutes and languages of the users of a batch of
handshakes in one query (readers_of), and a change reaches it as a control message carrying the
new preferences (publish), which it also writes to the user's sockets as a `preferences` frame.
"""

import json
import logging
import re
from dataclasses import asdict, dataclass
from functools import lru_cache

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.utils.translation import gettext as _

from . import redisconf
from .conf import app_settings
from .models import DigestFrequency, Preferences
from .redisaddress import REDIS_ERRORS
from .revocation import add_control
from .topics import TopicError, object_routes, parse_topic

logger = logging.getLogger(__name__)

# The control message's field naming the user whose preferences changed (revocation.py's are "user" and "group").
FIELD = "preferences"
MAX_MUTES = 200
KIND_PATTERN = re.compile(r"[a-z0-9_][a-z0-9_.:-]{0,31}")
CHOICES = ("toasts", "digest", "push", "language", "muted_kinds", "muted_topics")


@dataclass(frozen=True, slots=True)
class Mutes:
    """What a user muted; false when nothing is."""

    kinds: frozenset = frozenset()
    topics: frozenset = frozenset()

    def __bool__(self):
        return bool(self.kinds or self.topics)

    def matches(self, kind, topics):
        """Whether an event of this kind, shown under these topics (event_topics), is muted."""
        return kind in self.kinds or not self.topics.isdisjoint(topics)

    def matches_event(self, event):
        return self.matches(event.kind, event_topics(event.target_type, event.target_id))


NOTHING_MUTED = Mutes()


@lru_cache(maxsize=1024)
def _concrete_label(label):
    try:
        return apps.get_model(label)._meta.concrete_model._meta.label_lower
    except (LookupError, ValueError):
        return None  # a model removed since: its own label is all there is


def event_topics(target_type, target_id):
    """The model and object topics an event about this target is shown under (its proxy's concrete model's too)."""
    if not target_type:
        return ()
    return object_routes(target_type, target_id, _concrete_label(target_type))


def subject_of(payload):
    """(kind, topics) of an event as published (its payload, parsed): what Mutes.matches takes, for the relay."""
    target = payload.get("target") or {}
    return payload.get("kind"), event_topics(target.get("type"), target.get("id"))


@dataclass(frozen=True)
class Choices:
    """A user's preferences as they apply now: their choices, the site's defaults for the rest."""

    toasts: bool
    digest: str
    push: bool
    language: str
    muted_kinds: tuple
    muted_topics: tuple

    @property
    def mutes(self):
        return Mutes(frozenset(self.muted_kinds), frozenset(self.muted_topics)) if self.muted_kinds or self.muted_topics else NOTHING_MUTED

    def as_json(self):
        return {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()}


def site_defaults():
    """The site's defaults: NOTIFICATIONS_PREFERENCES over the built-in ones (validated by check E014)."""
    given = app_settings.NOTIFICATIONS_PREFERENCES
    defaults = {"toasts": True, "digest": DigestFrequency.OFF, "push": True, "language": "", "muted_kinds": [], "muted_topics": []}
    defaults.update(given or {})
    return defaults


def _applied(row, defaults):
    values = {}
    for name in CHOICES:
        chosen = getattr(row, name, None) if row is not None else None
        value = defaults[name] if chosen is None or chosen == "" else chosen
        values[name] = tuple(value) if name.startswith("muted_") else value
    return Choices(**values)


def choices_for(user):
    """The preferences of one user, as they apply now."""
    return _applied(Preferences.objects.filter(user_id=user.pk).first(), site_defaults())


def choices_of(user_ids):
    """{user id: Choices} for these users, in one query."""
    rows = {row.user_id: row for row in Preferences.objects.filter(user_id__in=list(user_ids))}
    defaults = site_defaults()
    return {pk: _applied(rows.get(pk), defaults) for pk in user_ids}


def applied(row):
    """The Choices a Preferences row makes (None: the user has none), over the site's defaults now."""
    return _applied(row, site_defaults())


def chosen(row):
    """{field: what the user chose, None where they follow the site's default} of a row (None: no row)."""
    values = {name: getattr(row, name, None) if row is not None else None for name in CHOICES}
    return {name: None if value == "" else value for name, value in values.items()}


@dataclass(frozen=True, slots=True)
class Reader:
    """How a user reads events on their sockets: what they muted, and the language they chose ("": none)."""

    mutes: Mutes = NOTHING_MUTED
    language: str = ""

    def __bool__(self):
        return bool(self.mutes or self.language)


EVERYONE = Reader()  # shared by every user who muted nothing and chose no language


def reader(mutes, language):
    """A Reader; EVERYONE's when nothing is muted and no language chosen."""
    return Reader(mutes, language) if mutes or language else EVERYONE


def readers_of(user_ids):
    """{user id: Reader} for these users, in one query: what the relay loads with a batch of handshakes."""
    return {pk: reader(choices.mutes, choices.language) for pk, choices in choices_of(user_ids).items()}


# Changing preferences --------------------------------------------------------------------------------


def clean(data, partial=False):
    """
    The fields of `data` (a dict, as JSON gives it) ready for a Preferences row, null meaning
    "the site's default"; ValidationError({field: [message, ...]}) naming each problem. Unknown
    fields are refused rather than ignored: a client that misspells one would lose its choice.
    """
    if not isinstance(data, dict):
        raise ValidationError({"__all__": [_("Send a JSON object of preferences.")]})
    errors, cleaned = {}, {}
    for name in data.keys() - set(CHOICES):
        errors[name] = [_("Unknown preference %(name)r; known: %(known)s.") % {"name": name, "known": ", ".join(CHOICES)}]
    for name in CHOICES:
        if name not in data:
            if not partial:
                cleaned[name] = None
            continue
        try:
            cleaned[name] = CLEANERS[name](data[name])
        except ValidationError as error:
            errors[name] = error.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def _boolean(value):
    if value is None or isinstance(value, bool):
        return value
    raise ValidationError(_("Expected true, false or null (the site's default)."))


def _digest(value):
    if value is None or value in DigestFrequency.values:
        return value
    raise ValidationError(_("Expected one of %(choices)s, or null (the site's default).") % {"choices": ", ".join(DigestFrequency.values)})


def _language(value):
    if value is None or value == "":
        return None
    codes = [code for code, _name in settings.LANGUAGES]
    if value in codes:
        return value
    raise ValidationError(_("Expected one of the site's languages (%(codes)s), or null.") % {"codes": ", ".join(codes)})


def _names(value, one):
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError(_("Expected a list, or null (the site's default)."))
    if len(value) > MAX_MUTES:
        raise ValidationError(_("At most %(max)d entries.") % {"max": MAX_MUTES})
    return list(dict.fromkeys(one(item) for item in value))


def _kind(item):
    if isinstance(item, str) and KIND_PATTERN.fullmatch(item):
        return item
    raise ValidationError(_("%(kind)r is not a kind such as \"model.updated\".") % {"kind": item})


def _mutable_topic(item):
    try:
        topic = parse_topic(item)
    except TopicError as error:
        raise ValidationError(str(error)) from None
    if topic.kind not in {"model", "object"}:
        raise ValidationError(_("%(topic)r cannot be muted: mute a model or an object topic, or kinds.") % {"topic": item})
    return topic.name


CLEANERS = {
    "toasts": _boolean,
    "digest": _digest,
    "push": _boolean,
    "language": _language,
    "muted_kinds": lambda value: _names(value, _kind),
    "muted_topics": lambda value: _names(value, _mutable_topic),
}


def update(user, data, partial=False):
    """
    Validate `data` (clean()) and store it as the user's preferences; the Choices that now
    apply. Once the transaction commits, every relay and every socket of the user learns them.
    """
    cleaned = clean(data, partial)
    database = router.db_for_write(Preferences)
    with transaction.atomic(using=database):
        row, _created = Preferences.objects.using(database).select_for_update().get_or_create(user_id=user.pk)
        for name, value in cleaned.items():
            setattr(row, name, "" if value is None and name in {"digest", "language"} else value)
        row.save()
        choices = _applied(row, site_defaults())
        transaction.on_commit(lambda: publish(user.pk, choices), using=database)
    return choices


def preferences_frame(choices):
    return json.dumps({"type": "preferences", "preferences": choices.as_json()}, separators=(",", ":"))


def publish(user_id, choices):
    """Tell every relay (and through them every socket of the user) the preferences that now apply."""
    try:
        add_control(redisconf.connection(), {FIELD: str(user_id), "frame": preferences_frame(choices)})
    except REDIS_ERRORS as error:
        # The relays' periodic re-check loads them again; the sockets' next connection too.
        logger.warning("Could not tell the relays that user %s changed their preferences: %s", user_id, error)


def reader_from_frame(frame):
    """The Reader a `preferences` frame tells of (the relay reads it from the control message, with no query)."""
    choices = json.loads(frame)["preferences"]
    kinds, topics = frozenset(choices.get("muted_kinds") or ()), frozenset(choices.get("muted_topics") or ())
    return reader(Mutes(kinds, topics) if kinds or topics else NOTHING_MUTED, choices.get("language") or "")
