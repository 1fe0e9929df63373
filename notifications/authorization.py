"""
Who may see what: the one place that decides, for the Django views and for the relay alike.

A user may follow a model (its `model:` topic, and through `model:*`) with that model's `view`
or `change` permission; an object with the same permission on the model, or on the object
itself where an authentication backend grants object permissions. Everyone may follow their
own inbox. All checks go through `user.has_perm`, so custom backends are respected, and with
Django's ModelBackend only the first check costs a query (it caches the user's permissions).

These functions touch the database: the relay calls them in a worker thread.
"""

from collections import defaultdict

from django.apps import apps
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ValidationError

from .models import Audience
from .topics import (
    TopicError,
    audience_route,
    group_route,
    model_topic,
    user_route,
)

FOLLOW_ACTIONS = ("view", "change")


def _follow_permissions(model):
    opts = model._meta
    return [f"{opts.app_label}.{get_permission_codename(action, opts)}" for action in FOLLOW_ACTIONS]


def may_follow_model(user, model):
    return any(user.has_perm(perm) for perm in _follow_permissions(model))


def may_follow_object(user, model, pk):
    if may_follow_model(user, model):
        return True
    try:
        obj = model._default_manager.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError, ValidationError):
        return False  # no such object, or a pk of the wrong type: nothing to grant on
    return any(user.has_perm(perm, obj) for perm in _follow_permissions(model))


def followable_models(user):
    """Labels of every model whose events `user` may see: what `model:*` expands to."""
    return {model._meta.label_lower for model in apps.get_models() if may_follow_model(user, model)}


def inbox_routes(user):
    """Every route an inbox event addressed to `user` can travel under."""
    return inbox_routes_of([user])[user.pk]


def inbox_routes_of(users):
    """{user pk: inbox routes} for many users, with one query for all their groups."""
    groups = _group_ids(users)
    routes = {}
    for user in users:
        routes[user.pk] = {user_route(user.pk), audience_route(Audience.ALL)}
        routes[user.pk].update(group_route(pk) for pk in groups.get(user.pk, ()))
        if getattr(user, "is_staff", False):  # custom user models need not have the flag
            routes[user.pk].add(audience_route(Audience.STAFF))
    return routes


def _group_ids(users):
    """{user pk: its group pks}, one query per user model (custom ones need not have groups)."""
    by_model = defaultdict(list)
    for user in users:
        by_model[type(user)].append(user.pk)
    groups = defaultdict(list)
    for model, pks in by_model.items():
        try:
            field = model._meta.get_field("groups")
        except (AttributeError, FieldDoesNotExist):
            continue
        if field.many_to_many:
            user_column, group_column = field.m2m_field_name(), field.m2m_reverse_field_name()
            memberships = field.remote_field.through.objects.filter(**{f"{user_column}__in": pks})
            for user_pk, group_pk in memberships.values_list(user_column, group_column):
                groups[user_pk].append(group_pk)
    return groups


def routes_for(user, topic):
    """The routes a subscription to `topic` registers, or TopicError("forbidden")."""
    if topic.kind == "inbox":
        return inbox_routes(user)
    if topic.kind == "all_models":
        return {model_topic(label) for label in followable_models(user)}
    if topic.kind == "model" and may_follow_model(user, topic.model):
        return {topic.name}
    if topic.kind == "object" and may_follow_object(user, topic.model, topic.pk):
        return {topic.name}
    raise TopicError("forbidden", f"You may not subscribe to {topic.name!r}.")
