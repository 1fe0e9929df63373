"""
How long a device's subscription lasts: as long as the login that made it.

Each login gets an id of its own in its session (written by the login itself, so no API request
ever writes the session), and each subscription records the login it was made in. Logging out
(django.contrib.auth.logout) deletes the subscriptions of that login, so a shared computer stops
showing the pushes of whoever logged out; NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT = False keeps them.
A new password, or an unusable one, ends every device's (Django ends the user's other sessions
then; the device that changed it subscribes again). On each page, the widget asks whether the
server still holds the browser's subscription for the user there (views.push_subscription_held):
a subscription found held is taken over by the page's login, and one that is not is dropped
from the browser, which covers a login as someone else without a logout.

A request that stores or takes over a subscription while its login ends (a logout, a new
password, in another request) must not leave it behind: the logout marks the login ended in
Redis before it deletes, and the request looks, after its write, for that mark and for a
password other than the one it started with (`still_valid`), and deletes its row when either
is there. Whichever comes second sees the other.
"""

import logging
import secrets

from django.contrib.auth import SESSION_KEY as USER_SESSION_KEY
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import DatabaseError, router, transaction
from django.db.models.signals import post_save, pre_save

from .. import redisconf
from ..conf import app_settings
from ..models import PushSubscription
from ..redisaddress import REDIS_ERRORS

logger = logging.getLogger(__name__)

SESSION_KEY = "notifications.login_id"
ENDED_FOR = 3600  # seconds a login is remembered as ended: longer than any request that started in it


def login_id(request):
    """The id of the login this request comes with; "" for a session from before it had one."""
    value = getattr(request, "session", {}).get(SESSION_KEY, "")
    return value if isinstance(value, str) else ""


def _ended_key(login):
    return f"{redisconf.stream_key()}:push-login-ended:{login}"


def still_valid(subscription, request):
    """
    Whether the subscription just written for this request may stay: its login has not ended
    and the user's password is the one the request started with. When not, it is deleted.
    """
    login = subscription.login_id
    try:
        ended = bool(login) and bool(redisconf.connection().exists(_ended_key(login)))
    except REDIS_ERRORS:  # as the logout could not mark it either: its deletion is all there is
        ended = False
    if ended or _stored_password(get_user_model(), request.user.pk) != request.user.password:
        PushSubscription.objects.filter(pk=subscription.pk, login_id=login).delete()
        return False
    return True


def _stored_password(user_model, pk):
    """The user's password hash as last written (the database written to: a replica may lag)."""
    users = user_model._default_manager.using(router.db_for_write(user_model))
    return users.filter(pk=pk).values_list("password", flat=True).first()


def take_over(subscription, login):
    """The subscription, found held on a page of `login`, ends with that login from now on: whether it changed hands."""
    if not login or subscription.login_id == login:
        return False
    PushSubscription.objects.filter(pk=subscription.pk).update(login_id=login)
    subscription.login_id = login
    return True


def start_login(sender, request, user, **kwargs):
    """
    Give a session login an id (Django has just cycled the session, or flushed another user's).
    The same user logging in again keeps theirs; a login without a session (a token API) gets none.
    """
    session = getattr(request, "session", None)
    if session is not None and USER_SESSION_KEY in session and not isinstance(session.get(SESSION_KEY), str):
        session[SESSION_KEY] = secrets.token_urlsafe(16)


def end_with_logout(sender, request, user, **kwargs):
    """
    Mark the login ended, then delete its subscriptions. Never stops the logout: Django logs
    the user out after this returns, whatever Redis or the database says.
    """
    login = login_id(request)
    if user is None or not login or not app_settings.NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT:
        return
    try:
        redisconf.connection().set(_ended_key(login), 1, ex=ENDED_FOR)
    except REDIS_ERRORS as error:
        logger.warning("Could not mark login of user %s ended (%s): a device subscribing at this very moment may keep its pushes.", user.pk, error)
    try:
        with transaction.atomic(using=router.db_for_write(PushSubscription)):  # a failure here spoils no outer transaction
            PushSubscription.objects.filter(user_id=user.pk, login_id=login).delete()
    except DatabaseError as error:
        logger.warning(
            "Could not end the push subscriptions of user %s at logout (%s): the browser keeps getting "
            "their pushes until someone else logs in there, or they get a new password.",
            user.pk,
            error,
        )


def _is_user_model(sender):
    return isinstance(sender, type) and issubclass(sender, get_user_model())


def note_password(sender, instance, raw=False, update_fields=None, **kwargs):
    """Before a save that may write the password: the one stored, to compare after it (one query a save)."""
    if _is_user_model(sender) and not raw and instance.pk is not None and (update_fields is None or "password" in update_fields):
        instance._notifications_stored_password = _stored_password(sender, instance.pk)


def end_with_new_password(sender, instance, created, raw=False, **kwargs):
    """
    A password set (set_password) or made unusable (set_unusable_password), and saved, ends the
    user's subscriptions, as it ends their other sessions. A hash upgraded at login (Django's
    check_password: the same password) is no new password.
    """
    stored = instance.__dict__.pop("_notifications_stored_password", None)
    if created or raw or stored is None or not _is_user_model(sender):
        return
    password = getattr(instance, "password", None)
    changed = password != stored
    chosen = getattr(instance, "_password", None) is not None or str(password).startswith(UNUSABLE_PASSWORD_PREFIX)
    if changed and chosen:
        PushSubscription.objects.filter(user_id=instance.pk).delete()


def connect():
    # Any sender: proxies of the user model (an admin of its own) and subclasses save through it too.
    user_logged_in.connect(start_login, dispatch_uid="notifications.push_subscriptions.login")
    user_logged_out.connect(end_with_logout, dispatch_uid="notifications.push_subscriptions.logout")
    pre_save.connect(note_password, dispatch_uid="notifications.push_subscriptions.stored_password")
    post_save.connect(end_with_new_password, dispatch_uid="notifications.push_subscriptions.password")
