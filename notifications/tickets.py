"""
WebSocket tickets: how a page authenticates a socket its session cookie cannot reach
(another domain, a cookie not sent to the relay's host).

Threat model and defences:
- A ticket is short-lived (NOTIFICATIONS_TICKET_MAX_AGE, 60 s) and signed with SECRET_KEY under
  its own salt, so one cannot be forged, altered, or confused with another signed value.
- It is bound to the session that asked for it, not only to the user: logging out ends the
  session and with it every ticket issued to it. (A request authenticated otherwise, by an API
  token, gets a short session of its own: ticketauth.py.) The session key itself never leaves the server
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

from . import redisconf
from .conf import app_settings
from .deployment import execute_with_card
from .sessions import Refusal, SessionCheck, check_sessions

SALT = "notifications.ws-ticket"
REDIS_KEY_PREFIX = "notifications:ticket:"


def _auth_hash_digest(user):
    return salted_hmac(SALT, user.get_session_auth_hash(), algorithm="sha256").hexdigest()


def issue_ticket(user, session_key):
    """A ticket for `user`, bound to the saved session `session_key` that logs them in (ticketauth.session_key_for)."""
    nonce = secrets.token_urlsafe(18)
    max_age = app_settings.NOTIFICATIONS_TICKET_MAX_AGE
    pipe = redisconf.connection().pipeline(transaction=False)
    pipe.set(REDIS_KEY_PREFIX + nonce, session_key, ex=max_age)
    execute_with_card(pipe)
    claims = {"u": str(user.pk), "n": nonce, "h": _auth_hash_digest(user)}
    return signing.dumps(claims, salt=SALT, compress=False)


class TicketRefusal:
    """Why a ticket proves nobody: words for logs and close reasons (the ticket itself is never shown)."""

    MALFORMED = "malformed ticket"
    SIGNATURE = "ticket signature mismatch (is SECRET_KEY the site's?)"
    EXPIRED = "ticket expired"
    UNKNOWN = "ticket unknown to this Redis (is REDIS_URL the site's?)"
    OTHER_USER = "ticket names another user than its session"


def check_ticket(ticket):
    """(SessionCheck, session key or None) for a ticket: its session's user, or why it proves nobody."""
    if not isinstance(ticket, str) or len(ticket) > 1000:
        return SessionCheck(refusal=TicketRefusal.MALFORMED), None
    try:
        claims = signing.loads(ticket, salt=SALT, max_age=app_settings.NOTIFICATIONS_TICKET_MAX_AGE)
    except signing.SignatureExpired:
        return SessionCheck(refusal=TicketRefusal.EXPIRED), None
    except signing.BadSignature:
        return SessionCheck(refusal=TicketRefusal.SIGNATURE), None
    if not isinstance(claims, dict) or not all(isinstance(claims.get(key), str) for key in "unh"):
        return SessionCheck(refusal=TicketRefusal.MALFORMED), None
    session_key = redisconf.connection().get(REDIS_KEY_PREFIX + claims["n"])
    if session_key is None:
        return SessionCheck(refusal=TicketRefusal.UNKNOWN), None
    session_key = session_key.decode()
    check = check_sessions([session_key])[session_key]
    if check.user is None:
        return check, session_key
    if str(check.user.pk) != claims["u"]:
        return SessionCheck(refusal=TicketRefusal.OTHER_USER), session_key
    if not constant_time_compare(_auth_hash_digest(check.user), claims["h"]):
        return SessionCheck(refusal=Refusal.PASSWORD_CHANGED), session_key
    return check, session_key
