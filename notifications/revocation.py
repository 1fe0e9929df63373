"""
Telling relays to re-check connections when access changes.

Whatever can change what a user's open sockets may receive sends, once its transaction
commits, a control message on a second Redis stream (`<stream key>:control`, beside the events'):
`{"user": <pk>}` (re-check that user's connections) or `{"group": <pk>}` (re-check its members').
Every relay reads that stream beside the events and re-checks each affected connection against
the session and the user as they are now (wsserver.client.Client.recheck): an ended session is
closed with 4003, topics no longer allowed are unsubscribed. The messages carry no secrets and
no decision, only "look again": the decision stays in authorization.py.

Sources: logout and session deletion, user saves (password, is_active, is_staff, is_superuser
and the rest) and deletion, group membership, user permissions, group permissions, group
deletion. Saves that only touch last_login (every login) send nothing.
"""

import logging

from django.apps import apps
from django.contrib.auth import SESSION_KEY, get_user_model, user_logged_out
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.utils import timezone

from . import redisconf
from .redisaddress import REDIS_ERRORS

logger = logging.getLogger(__name__)

CONTROL_MAXLEN = 10_000


def control_key():
    return f"{redisconf.stream_key()}:control"


def add_control(redis, fields):
    """Add one control message (to a client or a pipeline), the stream kept to about CONTROL_MAXLEN."""
    return redis.xadd(control_key(), fields, maxlen=CONTROL_MAXLEN, approximate=True)


def recheck(kind, pks):
    """Ask relays, after commit, to re-check the connections of these users or groups' members."""
    pks = sorted({str(pk) for pk in pks})
    if pks:
        transaction.on_commit(lambda: _send(kind, pks))


def _send(kind, pks):
    try:
        redis = redisconf.connection()
        pipe = redis.pipeline(transaction=False)
        for pk in pks:
            add_control(pipe, {kind: pk})
        pipe.execute()
    except REDIS_ERRORS as error:
        # Relays re-check every connection when they reconnect to Redis; until then, each
        # subscribe is still authorized afresh.
        logger.warning("Could not ask relays to re-check %s %s: %s", kind, ", ".join(pks), error)


def user_logged_out_handler(sender, request, user, **kwargs):
    if user is not None:
        recheck("user", [user.pk])


def user_saved(sender, instance, created, update_fields=None, raw=False, **kwargs):
    if not created and not raw and set(update_fields or ()) != {"last_login"}:
        recheck("user", [instance.pk])


def user_deleted(sender, instance, **kwargs):
    recheck("user", [instance.pk])


def session_deleted(sender, instance, **kwargs):
    """A live session deleted (an expired one, as clearsessions deletes, authenticates nobody)."""
    if instance.expire_date > timezone.now():
        user_pk = instance.get_decoded().get(SESSION_KEY)
        if user_pk is not None:
            recheck("user", [user_pk])


def memberships_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """user.groups / group.user_set, and user.user_permissions / permission.user_set."""
    if action not in {"post_add", "post_remove", "pre_clear"}:
        return
    if not reverse:  # instance is a user
        recheck("user", [instance.pk])
    elif action == "pre_clear":  # instance is a group or permission: its users, before they go
        recheck("user", instance.user_set.values_list("pk", flat=True))
    else:
        recheck("user", pk_set)


def group_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """group.permissions / permission.group_set."""
    if action not in {"post_add", "post_remove", "pre_clear"}:
        return
    if not reverse:
        recheck("group", [instance.pk])
    elif action == "pre_clear":
        recheck("group", instance.group_set.values_list("pk", flat=True))
    else:
        recheck("group", pk_set)


def group_deleted(sender, instance, **kwargs):
    recheck("group", [instance.pk])


def connect():
    user_model = get_user_model()
    user_logged_out.connect(user_logged_out_handler, dispatch_uid="notifications.recheck.logout")
    post_save.connect(user_saved, sender=user_model, dispatch_uid="notifications.recheck.user_saved")
    post_delete.connect(user_deleted, sender=user_model, dispatch_uid="notifications.recheck.user_deleted")
    pre_delete.connect(group_deleted, sender=Group, dispatch_uid="notifications.recheck.group_deleted")
    if hasattr(user_model, "groups"):
        m2m_changed.connect(memberships_changed, sender=user_model.groups.through, dispatch_uid="notifications.recheck.groups")
    if hasattr(user_model, "user_permissions"):
        m2m_changed.connect(
            memberships_changed, sender=user_model.user_permissions.through, dispatch_uid="notifications.recheck.perms"
        )
    m2m_changed.connect(group_permissions_changed, sender=Group.permissions.through, dispatch_uid="notifications.recheck.group_perms")
    if apps.is_installed("django.contrib.sessions"):
        # Database sessions deleted (the admin, SessionStore.delete). The price: with a receiver,
        # Django deletes sessions row by row, clearsessions included.
        from django.contrib.sessions.models import Session

        post_delete.connect(session_deleted, sender=Session, dispatch_uid="notifications.recheck.session_deleted")
