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
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils import timezone


class _SessionCopy(dict):
    """The session's data for get_user() to read; flush() and cycle_key() write nothing."""

    def flush(self):
        self.clear()

    def cycle_key(self):
        pass


def user_for_session_key(session_key):
    """The active user logged in with this session, or None."""
    return users_for_session_keys([session_key]).get(session_key)


def users_for_session_keys(session_keys):
    """{session key: its active user} for those of these sessions that have one."""
    users = {}
    for session_key, data in _session_data(session_keys).items():
        user = get_user(SimpleNamespace(session=_SessionCopy(data)))
        if user.is_authenticated and getattr(user, "is_active", True):
            users[session_key] = user
    return users


def _session_data(session_keys):
    """
    {key: data} of these sessions: with the database engine (or one that loads the same way),
    one query for them all, as its load() would (unexpired, data decoded); otherwise each
    loaded by its own SessionStore.
    """
    session_keys = [key for key in dict.fromkeys(session_keys) if key]
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not _loads_like_the_database_engine(store_class):
        return {key: store_class(key).load() for key in session_keys}
    store = store_class()
    # The keys a SessionStore would accept (it treats the others as no session at all).
    session_keys = [key for key in session_keys if store._validate_session_key(key)]
    rows = store_class.get_model_class().objects.filter(session_key__in=session_keys, expire_date__gt=timezone.now())
    return {key: store.decode(data) for key, data in rows.values_list("session_key", "session_data")}


def _loads_like_the_database_engine(store_class):
    return (
        issubclass(store_class, DatabaseSessionStore)
        and store_class.load is DatabaseSessionStore.load
        and store_class._get_session_from_db is DatabaseSessionStore._get_session_from_db
    )
