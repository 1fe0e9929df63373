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
    name: str
    kind: str  # "inbox", "all_models", "model" or "object"
    model_label: str = ""  # "app_label.model_name", lower case
    pk: str = ""

    @property
    def model(self):
        return apps.get_model(self.model_label)


def parse_topic(name):
    """Turn a topic name into a Topic, or raise TopicError saying what is wrong with it."""
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
        return Topic(name, "model", _model_label(name, rest))
    if prefix == "object" and rest.count(":") >= 1:
        label, _, pk = rest.rpartition(":")
        if pk:
            return Topic(name, "object", _model_label(name, label), pk)
    raise TopicError(
        "unknown_topic",
        f"Unknown topic {name!r}: expected 'inbox', 'model:*', 'model:<app_label>.<model_name>' "
        "or 'object:<app_label>.<model_name>:<pk>'.",
    )


def _model_label(topic_name, label):
    try:
        return apps.get_model(label)._meta.label_lower
    except (LookupError, ValueError):
        raise TopicError("unknown_topic", f"Unknown topic {topic_name!r}: no model {label!r}.") from None


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


def topic_of_route(route):
    """The topic a client sees an event under when it reached it through `route`."""
    return INBOX if route.startswith("inbox:") else route


def route_priority(route):
    """Sort key: the most specific route first, so a client subscribed twice sees that one."""
    return {"object": 0, "model": 1}.get(route.partition(":")[0], 2)
