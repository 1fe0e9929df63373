"""
How long a device's subscription lasts: as long as the login that made it.

Its id is kept in that login's session, and logging out (django.contrib.auth.logout) deletes
it, so a shared computer stops showing the pushes of whoever logged out. A new password ends
every device's (Django ends every other session of the user then; the device that changed it
subscribes again). The widget asks, on each page, whether the server still holds the browser's
subscription for the user there (subscriptions.held, which renews the tie in a new session),
and drops it from the browser when not: that covers a login as someone else without a logout.
"""

from django.contrib.auth import get_user_model, user_logged_out
from django.db.models.signals import post_save

from ..models import PushSubscription

# The ids of the subscriptions made, or found held, in a login session.
SESSION_KEY = "notifications.push_subscriptions"
SESSION_LIMIT = 20  # a browser holds one at a time; older ids are of subscriptions it dropped


def remember_in_session(session, subscription):
    """Tie `subscription` to this login session: logging out of it ends the subscription."""
    ids = session.get(SESSION_KEY)
    ids = ids if isinstance(ids, list) else []
    if subscription.pk not in ids:
        session[SESSION_KEY] = [*ids, subscription.pk][-SESSION_LIMIT:]


def end_with_logout(sender, request, user, **kwargs):
    """Delete the subscriptions made in the session logging out (Django flushes it after this)."""
    ids = getattr(request, "session", {}).get(SESSION_KEY) if request is not None else None
    if user is not None and isinstance(ids, list) and ids:
        PushSubscription.objects.filter(user_id=user.pk, pk__in=[pk for pk in ids if isinstance(pk, int)]).delete()


def end_with_new_password(sender, instance, created, raw=False, **kwargs):
    """
    A password set and saved (AbstractBaseUser.set_password keeps it in `_password` until the
    save is over) ends the user's subscriptions, as it ends their other sessions.
    """
    if not created and not raw and getattr(instance, "_password", None) is not None:
        PushSubscription.objects.filter(user_id=instance.pk).delete()


def connect():
    user_logged_out.connect(end_with_logout, dispatch_uid="notifications.push_subscriptions.logout")
    post_save.connect(end_with_new_password, sender=get_user_model(), dispatch_uid="notifications.push_subscriptions.password")
