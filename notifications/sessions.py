"""
Who a Django session belongs to, decided outside a request.

The relay has a session key (from the cookie, or through a ticket) but no HttpRequest. It asks
`django.contrib.auth.get_user` itself, so the answer is exactly Django's: the user id and backend
stored in the session, the session auth hash (a password change ends old sessions), and the
backend's `get_user` (ModelBackend refuses inactive users; is_active is checked here too for
backends that allow them).

get_user() would write to the session it reads: flush it when the hash is wrong, rotate its key
when the hash matches only a SECRET_KEY_FALLBACKS secret. Done from the relay, a rotation would
delete the browser's session without handing it the new cookie, so get_user() is given a copy of
the session data and its writes are left to the next HTTP request, where Django makes them.
"""

from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user


class _SessionCopy(dict):
    """The session's data for get_user() to read; flush() and cycle_key() write nothing."""

    def flush(self):
        self.clear()

    def cycle_key(self):
        pass


def user_for_session_key(session_key):
    """The active user logged in with this session, or None."""
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=_SessionCopy(store.load())))
    if not user.is_authenticated or not getattr(user, "is_active", True):
        return None
    return user
