"""
Topic names, and the routing keys events travel under.

Clients subscribe to *topics* (`inbox`, `model:auth.user`, `object:auth.user:5`, `model:*`).
Events travel with *routes*: the keys the relay indexes connections by. Model and object topics
are their own route; `inbox` fans out to one route per way a user can be addressed
(`inbox:user:7`, `inbox:group:3`, `inbox:all`, `inbox:staff`), so the relay finds an inbox
event's recipients with a few dictionary lookups instead of a database query.

This module is pure: it parses and names, it never checks permissions (see authorization.py).
"""

from dataclasses import dataclass

from django.apps import apps
from django.core.exceptions import ValidationError

INBOX = "inbox"
ALL_MODELS = "model:*"
MAX_TOPIC_LENGTH = 200


class TopicError(ValueError):
    """A topic that cannot be subscribed to; `code` is the protocol's error code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Topic:
    name: str  # canonical: the name events are published under
    kind: str  # "inbox", "all_models", "model" or "object"
    model_label: str = ""  # "app_label.model_name", lower case
    pk: str = ""

    @property
    def model(self):
        return apps.get_model(self.model_label)


def parse_topic(name):
    """
    Turn a topic name into a Topic with its canonical name (`model:auth.User` and
    `object:auth.user:05` become `model:auth.user` and `object:auth.user:5`, the names events are
    published under), or raise TopicError saying what is wrong with it.
    """
    if not isinstance(name, str) or not name:
        raise TopicError("bad_request", "A topic is a non-empty string.")
    if len(name) > MAX_TOPIC_LENGTH:
        raise TopicError("bad_request", f"A topic is at most {MAX_TOPIC_LENGTH} characters long.")
    if name == INBOX:
        return Topic(name, "inbox")
    if name == ALL_MODELS:
        return Topic(name, "all_models")
    prefix, _, rest = name.partition(":")
    if prefix == "model" and rest:
        model = _model(name, rest)
        return Topic(model_topic(model._meta.label_lower), "model", model._meta.label_lower)
    label, _, pk = rest.partition(":")  # a model label has no ":", a string pk may
    if prefix == "object" and label and pk:
        model = _model(name, label)
        pk = _canonical_pk(name, model, pk)
        return Topic(object_topic(model._meta.label_lower, pk), "object", model._meta.label_lower, pk)
    raise TopicError(
        "unknown_topic",
        f"Unknown topic {name!r}: expected 'inbox', 'model:*', 'model:<app_label>.<model_name>' "
        "or 'object:<app_label>.<model_name>:<pk>'.",
    )


def _model(topic_name, label):
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        raise TopicError("unknown_topic", f"Unknown topic {topic_name!r}: no model {label!r}.") from None


def _canonical_pk(topic_name, model, pk):
    """The pk as str() of its Python value, the way events name it ("05" → "5" for integers)."""
    try:
        return str(model._meta.pk.to_python(pk))
    except ValidationError:
        raise TopicError("bad_request", f"{topic_name!r}: {pk!r} is not a valid {model.__name__} key.") from None


def model_topic(label):
    return f"model:{label}"


def object_topic(label, pk):
    return f"object:{label}:{pk}"


def user_route(user_id):
    return f"inbox:user:{user_id}"


def group_route(group_id):
    return f"inbox:group:{group_id}"


def audience_route(audience):
    return f"inbox:{audience}"


def object_routes(label, pk, concrete_label=None):
    """
    Routes of an event about an object: its own topics, then its model's (and its concrete
    model's). Most specific first: a client following both sees the event under the object topic.
    """
    labels = dict.fromkeys([label, concrete_label or label])
    return ([object_topic(lbl, pk) for lbl in labels] if pk else []) + [model_topic(lbl) for lbl in labels]


def addressee_routes(user_ids=(), group_ids=(), audiences=()):
    """
    Routes of an inbox event addressed to these (distinct) users, groups and audiences: all
    shown under one topic, `inbox`, so their order does not matter.
    """
    return (
        [user_route(pk) for pk in user_ids]
        + [group_route(pk) for pk in group_ids]
        + [audience_route(audience) for audience in audiences]
    )


def topic_of_route(route):
    """The topic a client sees an event under when it reached it through `route`."""
    return INBOX if route.startswith("inbox:") else route

