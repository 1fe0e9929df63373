"""
How long a device's subscription lasts: as long as the login that made it.

Each login gets an id of its own in its session (written by the login itself, so no API request
ever writes the session), and each subscription records the login it was made in. Logging out
(django.contrib.auth.logout) deletes the subscriptions of that login, so a shared computer stops
showing the pushes of whoever logged out; NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT = False keeps them.
A new password ends every device's (Django ends every other session of the user then; the
device that changed it subscribes again). On each page, the widget asks whether the server
still holds the browser's subscription for the user there (views.push_subscription_held): a
subscription found held is taken over by the page's login, and one that is not is dropped from
the browser, which covers a login as someone else without a logout.
"""

import logging
import secrets

from django.contrib.auth import get_user_model, user_logged_in, user_logged_out
from django.db import DatabaseError
from django.db.models.signals import post_save

from ..conf import app_settings
from ..models import PushSubscription

logger = logging.getLogger(__name__)

SESSION_KEY = "notifications.login_id"


def login_id(request):
    """The id of the login this request comes with; "" for a session from before it had one."""
    value = getattr(request, "session", {}).get(SESSION_KEY, "")
    return value if isinstance(value, str) else ""


def take_over(subscription, login):
    """The subscription, found held on a page of `login`, ends with that login from now on."""
    if login and subscription.login_id != login:
        PushSubscription.objects.filter(pk=subscription.pk).update(login_id=login)
        subscription.login_id = login


def start_login(sender, request, user, **kwargs):
    """Give the login an id (Django has just cycled or flushed the session for it)."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = secrets.token_urlsafe(16)


def end_with_logout(sender, request, user, **kwargs):
    """
    Delete the subscriptions of the login ending. Never stops the logout: Django logs the user
    out after this returns, whatever the database says.
    """
    login = login_id(request) if request is not None else ""
    if user is None or not login or not app_settings.NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT:
        return
    try:
        PushSubscription.objects.filter(user_id=user.pk, login_id=login).delete()
    except DatabaseError as error:
        logger.warning(
            "Could not end the push subscriptions of user %s at logout (%s): the browser they were "
            "made in drops them the next time a page with the widget loads there.",
            user.pk,
            error,
        )


def end_with_new_password(sender, instance, created, raw=False, **kwargs):
    """
    A password set and saved (AbstractBaseUser.set_password keeps it in `_password` until the
    save is over) ends the user's subscriptions, as it ends their other sessions.
    """
    if not created and not raw and getattr(instance, "_password", None) is not None:
        PushSubscription.objects.filter(user_id=instance.pk).delete()


def connect():
    user_logged_in.connect(start_login, dispatch_uid="notifications.push_subscriptions.login")
    user_logged_out.connect(end_with_logout, dispatch_uid="notifications.push_subscriptions.logout")
    post_save.connect(end_with_new_password, sender=get_user_model(), dispatch_uid="notifications.push_subscriptions.password")
