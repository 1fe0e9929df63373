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

When the answer is "nobody", the relay says why (a refused socket's close reason and log line
name it, so a misconfiguration is found from the log): see `Refusal`. The reasons cost queries
only for sessions that are refused.
"""

from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY, get_user, get_user_model
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core import signing
from django.utils import timezone


class Refusal:
    """Why a session logs nobody in: words for logs and close reasons, never a secret."""

    NO_SESSION = "no session"
    EXPIRED = "session expired"
    SIGNATURE = "signature mismatch (is SECRET_KEY the site's?)"
    NOT_LOGGED_IN = "session not logged in"
    BACKEND = "authentication backend not in AUTHENTICATION_BACKENDS"
    PASSWORD_CHANGED = "password changed since login"
    INACTIVE = "user inactive"
    DELETED = "user deleted"


@dataclass(frozen=True)
class SessionCheck:
    """The verdict on one session: its active user (and when the session expires), or a refusal."""

    user: object = None
    expires: datetime | None = None  # known for database sessions; None: ask again later
    refusal: str | None = None


class _SessionCopy(dict):
    """The session's data for get_user() to read; flush() and cycle_key() write nothing."""

    flushed = False

    def flush(self):
        self.flushed = True
        self.clear()

    def cycle_key(self):
        pass


def check_sessions(session_keys):
    """{session key: SessionCheck} for each of these keys."""
    checks = {}
    for session_key, loaded in _load_sessions(session_keys).items():
        if isinstance(loaded, SessionCheck):
            checks[session_key] = loaded
            continue
        data, expires = loaded
        copy = _SessionCopy(data)
        user = get_user(SimpleNamespace(session=copy))
        if user.is_authenticated and getattr(user, "is_active", True):
            checks[session_key] = SessionCheck(user, expires)
        else:
            checks[session_key] = SessionCheck(refusal=_why_nobody(data, copy, user))
    return checks


def _why_nobody(data, copy, user):
    """What get_user() found wrong with a session it answered AnonymousUser for (or an inactive user)."""
    if SESSION_KEY not in data:
        return Refusal.NOT_LOGGED_IN
    if data.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return Refusal.BACKEND
    if copy.flushed:
        return Refusal.PASSWORD_CHANGED
    if user.is_authenticated:
        return Refusal.INACTIVE  # a backend that lets inactive users in: still not served here
    model = get_user_model()
    try:
        exists = model._default_manager.filter(pk=model._meta.pk.to_python(data[SESSION_KEY])).exists()
    except Exception:  # a key of the wrong type: no such user
        exists = False
    return Refusal.INACTIVE if exists else Refusal.DELETED


def _load_sessions(session_keys):
    """
    {key: (data, expiry) or a SessionCheck refusing it}. With the database engine (or one that
    loads the same way), one query for them all, judged as its load() would (unexpired, data
    decoded); otherwise each is loaded by its own SessionStore.
    """
    session_keys = list(dict.fromkeys(session_keys))
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not _loads_like_the_database_engine(store_class):
        loaded = {}
        for key in session_keys:
            data = store_class(key).load() if key else {}
            loaded[key] = (data, None) if data else SessionCheck(refusal=Refusal.NO_SESSION)
        return loaded
    store = store_class()
    # The keys a SessionStore would accept (it treats the others as no session at all).
    valid = [key for key in session_keys if key and store._validate_session_key(key)]
    rows = store_class.get_model_class().objects.filter(session_key__in=valid)
    found = {key: (data, expires) for key, data, expires in rows.values_list("session_key", "session_data", "expire_date")}
    now = timezone.now()
    loaded = {}
    for key in session_keys:
        if key not in found:
            loaded[key] = SessionCheck(refusal=Refusal.NO_SESSION)
            continue
        encoded, expires = found[key]
        if expires <= now:
            loaded[key] = SessionCheck(refusal=Refusal.EXPIRED)
            continue
        data = store.decode(encoded)
        if not data and _badly_signed(store, encoded):
            loaded[key] = SessionCheck(refusal=Refusal.SIGNATURE)
        else:
            loaded[key] = (data, expires)
    return loaded


def _badly_signed(store, encoded):
    """Whether session data failed to decode because its signature does not match our SECRET_KEY."""
    try:
        signing.loads(encoded, salt=store.key_salt, serializer=store.serializer)
    except signing.BadSignature:
        return True
    except Exception:
        return False
    return False


def _loads_like_the_database_engine(store_class):
    return (
        issubclass(store_class, DatabaseSessionStore)
        and store_class.load is DatabaseSessionStore.load
        and store_class._get_session_from_db is DatabaseSessionStore._get_session_from_db
    )
