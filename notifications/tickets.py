"""
WebSocket tickets: how a page authenticates a socket its session cookie cannot reach
(another domain, a cookie not sent to the relay's host).

Threat model and defences:
- A ticket is short-lived (NOTIFICATIONS_TICKET_MAX_AGE, 60 s) and signed with SECRET_KEY under
  its own salt, so one cannot be forged, altered, or confused with another signed value.
- It is bound to the session that asked for it, not only to the user: logging out ends the
  session and with it every ticket issued to it. The session key itself never leaves the server
  (it would make the HttpOnly session cookie readable by scripts): the ticket carries a random
  nonce, and Redis maps the nonce to the session key for the ticket's lifetime.
- It is bound to the session auth hash: a password change kills it even when Django keeps the
  changing session alive (update_session_auth_hash).
- It is sent as the first WebSocket message, never in a URL, so it does not reach access logs,
  Referer headers or browser history; nothing logs it.
"""

import secrets

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac
from django_redis import get_redis_connection

from .conf import app_settings
from .sessions import user_for_session_key

SALT = "notifications.ws-ticket"
REDIS_KEY_PREFIX = "notifications:ticket:"


def _auth_hash_digest(user):
    return salted_hmac(SALT, user.get_session_auth_hash(), algorithm="sha256").hexdigest()


def _redis():
    return get_redis_connection(app_settings.NOTIFICATIONS_REDIS_ALIAS)


def issue_ticket(request):
    """A ticket for the user logged in on `request` (which must have a saved session)."""
    if request.session.session_key is None:
        request.session.save()
    nonce = secrets.token_urlsafe(18)
    max_age = app_settings.NOTIFICATIONS_TICKET_MAX_AGE
    _redis().set(REDIS_KEY_PREFIX + nonce, request.session.session_key, ex=max_age)
    claims = {"u": str(request.user.pk), "n": nonce, "h": _auth_hash_digest(request.user)}
    return signing.dumps(claims, salt=SALT, compress=False)


def authenticate_ticket(ticket):
    """(user, session_key) for a valid ticket, or None: bad signature, expired, or session over."""
    if not isinstance(ticket, str) or len(ticket) > 1000:
        return None
    try:
        claims = signing.loads(ticket, salt=SALT, max_age=app_settings.NOTIFICATIONS_TICKET_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(claims, dict) or not all(isinstance(claims.get(key), str) for key in "unh"):
        return None
    session_key = _redis().get(REDIS_KEY_PREFIX + claims["n"])
    if session_key is None:
        return None
    session_key = session_key.decode()
    user = user_for_session_key(session_key)
    if (
        user is None
        or str(user.pk) != claims["u"]
        or not constant_time_compare(_auth_hash_digest(user), claims["h"])
    ):
        return None
    return user, session_key
