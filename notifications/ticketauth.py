"""
Who asks for a WebSocket ticket: the site's own authentication, chosen by a setting.

A single-page app or a mobile app that calls the site's API with a token has no Django session
cookie, so the ticket endpoint asks what the API asks. NOTIFICATIONS_TICKET_AUTHENTICATION lists
dotted paths, tried in order; the first that names a user wins:

- a Django REST framework authentication class (TokenAuthentication, SessionAuthentication, or
  the site's own): used as DRF's views use it. `authenticate()` returns (user, auth) or None;
  AuthenticationFailed is answered 401, PermissionDenied 403.
- any callable `request -> user or None` (an anonymous or inactive user counts as None). The
  default, `notifications.ticketauth.session_user`, is Django's session login.

Cross-site request forgery. A request authenticated by a cookie can be made by another site's
page, so it must carry Django's CSRF token when it changes something (POST). One authenticated
by a header another site cannot set (a bearer token) need not. Who decides:
- DRF classes decide as in DRF: SessionAuthentication checks CSRF itself, token classes do not;
- a callable gets Django's CSRF check on POST, unless it is marked with Django's own
  `django.views.decorators.csrf.csrf_exempt` (do so only for callables that read no cookie).

A ticket is bound to a Django session (tickets.py: logging out, or a password change, ends the
sockets it opened). A user authenticated by the request's own session gets a ticket bound to
that session; any other (a token) gets a session of its own, opened here for the sockets and
lasting NOTIFICATIONS_API_SESSION_AGE seconds: a socket so opened is re-authenticated with the
token (a new ticket) at least that often, which bounds how long a revoked token keeps one open.

Importing this module never imports rest_framework: DRF is optional at run time.
"""

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import app_settings

SETTING = "NOTIFICATIONS_TICKET_AUTHENTICATION"


def session_user(request):
    """The user of Django's session login (AuthenticationMiddleware's request.user), or None."""
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


class Refused(Exception):
    """Credentials were sent and are wrong: the answer's status, error code, message and headers."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


@dataclass(frozen=True)
class Authenticator:
    """One entry of the setting: `authenticate(request)` → user or None (or Refused)."""

    path: str
    target: object = field(repr=False)  # what the path names: a DRF class or a callable
    authenticate: object = field(repr=False)
    csrf_checked_here: bool  # whether the view must run Django's CSRF check on unsafe methods


def _drf_authenticator(path, cls):
    from rest_framework import exceptions
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    instance = cls()

    def authenticate(request):
        # With the parsers DRF's views use: SessionAuthentication's CSRF check reads the form.
        drf_request = Request(request, parsers=[parser() for parser in api_settings.DEFAULT_PARSER_CLASSES])
        try:
            found = instance.authenticate(drf_request)
        except exceptions.APIException as error:
            raise _refusal(error, instance.authenticate_header(drf_request)) from None
        if found is None:
            return None
        return _active(found[0])

    return Authenticator(path, cls, authenticate, csrf_checked_here=False)


def _refusal(error, www_authenticate):
    detail = str(error.detail)
    if error.status_code == 401 and www_authenticate:
        return Refused(401, "authentication_failed", detail, {"WWW-Authenticate": www_authenticate})
    if detail.startswith("CSRF Failed"):  # DRF's SessionAuthentication
        return Refused(403, "csrf_failed", detail)
    if error.status_code == 401:  # as DRF answers it from a class with no WWW-Authenticate header
        return Refused(403, "authentication_failed", detail)
    return Refused(error.status_code, error.default_code, detail)


def _active(user):
    if user is None or not user.is_authenticated or not getattr(user, "is_active", True):
        return None
    return user


def load(path):
    """The Authenticator a dotted path names; ImproperlyConfigured saying what is wrong with it."""
    if not isinstance(path, str) or not path:
        raise ImproperlyConfigured(f"{SETTING} entries are dotted paths (strings), not {path!r}.")
    try:
        target = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(f"{SETTING}: cannot import {path!r} ({error}).") from None
    if isinstance(target, type) and _is_drf_authentication(target):
        return _drf_authenticator(path, target)
    if isinstance(target, type) or not callable(target):
        raise ImproperlyConfigured(
            f"{SETTING}: {path!r} is neither a Django REST framework authentication class nor a callable "
            "taking the request and returning a user or None."
        )
    return Authenticator(
        path, target, lambda request: _active(target(request)), csrf_checked_here=not getattr(target, "csrf_exempt", False)
    )


def _is_drf_authentication(cls):
    try:
        from rest_framework.authentication import BaseAuthentication
    except ImportError:
        return False
    return issubclass(cls, BaseAuthentication)


@lru_cache(maxsize=8)
def _load_all(paths):
    if not paths:
        raise ImproperlyConfigured(f"{SETTING} is empty: nobody could get a ticket.")
    return [load(path) for path in paths]


def authenticators():
    """The setting's Authenticators, in order (loaded once per value of the setting)."""
    paths = app_settings.NOTIFICATIONS_TICKET_AUTHENTICATION
    if isinstance(paths, str) or not isinstance(paths, (list, tuple)):
        raise ImproperlyConfigured(f"{SETTING} is a list of dotted paths, not {paths!r}.")
    return _load_all(tuple(paths))


def authenticate(request):
    """(user, Authenticator) of the first authenticator that names a user, or None; Refused."""
    for authenticator in authenticators():
        user = authenticator.authenticate(request)
        if user is not None:
            return user, authenticator
    return None


def session_key_for(request, user):
    """
    The session a ticket for `user` is bound to: the request's own when it logs this user in,
    else a new one for the sockets (see above).
    """
    session = getattr(request, "session", None)
    request_user = getattr(request, "user", None)
    if session is not None and request_user is not None and request_user.is_authenticated and request_user.pk == user.pk:
        if session.session_key is None:
            session.save()
        return session.session_key
    return open_api_session(user)


def open_api_session(user):
    """A session that logs `user` in as django.contrib.auth.login would, for API_SESSION_AGE seconds; its key."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = getattr(user, "backend", None) or settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.set_expiry(app_settings.NOTIFICATIONS_API_SESSION_AGE)
    store.create()
    return store.session_key
