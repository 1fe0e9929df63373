"""
HTTP endpoints of the notifications app: JSON in, JSON out, session authentication.

Every answer is JSON, errors included, so the widget never has to parse an HTML error page:
401 when not logged in, 400 for bad parameters, 403 for a failed CSRF check, 404 for an event
not in the user's feed, 405 for a wrong method, and 503 with Retry-After while Redis or the
database is unreachable (the widget then retries with its backoff instead of giving up).
"""

import logging
from functools import wraps
from urllib.parse import urlencode

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.http.request import split_domain_port
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from . import feed, redisaddress
from .conf import WEBSOCKET_PATH, app_settings
from .publishing import event_payload
from .tickets import issue_ticket

try:
    from django_redis.exceptions import ConnectionInterrupted
except ImportError:  # django-redis is optional; without it, redis-py's own errors are all there is
    ConnectionInterrupted = RedisError

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Seconds a client should wait before asking again while a backend is down: long enough not to
# hammer it, short enough that a restarted server is noticed soon.
RETRY_AFTER_SECONDS = 5
# What reaching each backend raises when it is down. django-redis's cache methods wrap redis-py's
# errors in ConnectionInterrupted; the connections it hands out raise them as they are.
REDIS_ERRORS = (*redisaddress.REDIS_ERRORS, ConnectionInterrupted)
DATABASE_ERRORS = (OperationalError, InterfaceError)


def json_error(status, error, message, **headers):
    response = JsonResponse({"error": error, "message": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def unavailable(request, error):
    """
    503 for a request that needed Redis or the database while it was unreachable: one warning
    line naming what is down (not a traceback per request: an outage fails every request).
    """
    backend = "Redis" if isinstance(error, REDIS_ERRORS) else "The database"
    reason = " ".join(str(error).split()) or type(error).__name__  # drivers' messages span lines
    logger.warning("%s is unreachable; %s %s answered 503: %s", backend, request.method, request.path, reason)
    return json_error(
        503,
        "unavailable",
        f"{backend} is unreachable; try again in a few seconds.",
        **{"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class JsonCsrfViewMiddleware(CsrfViewMiddleware):
    """Django's CSRF check, answering its rejections in JSON."""

    def _reject(self, request, reason):
        return json_error(403, "csrf_failed", f"CSRF check failed: {reason}")


def api_view(*methods):
    """
    A JSON endpoint: allowed methods, a logged-in user, Django's CSRF check, never cached, and a
    503 while a backend is down. The user is looked up here (request.user is lazy, and its
    session may live in the database), so an outage met there is answered like one in the view.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return json_error(405, "method_not_allowed", f"Use {' or '.join(methods)}.", Allow=", ".join(methods))
            try:
                if not request.user.is_authenticated:
                    return json_error(401, "not_authenticated", "Log in first.")
                return view(request, *args, **kwargs)
            except REDIS_ERRORS + DATABASE_ERRORS as error:
                return unavailable(request, error)

        return csrf_exempt(never_cache(decorator_from_middleware(JsonCsrfViewMiddleware)(wrapper)))

    return decorator


class BadParameter(ValueError):
    pass


def int_parameter(request, name, default, minimum, maximum=None):
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"'{name}' must be a whole number, not {raw!r}.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadParameter(f"'{name}' must be {bounds}.")
    return value


def public_ws_url(request):
    """WSSERVER_PUBLIC_URL, or the relay on the host this request came to, at WSSERVER_PORT."""
    if app_settings.WSSERVER_PUBLIC_URL:
        return app_settings.WSSERVER_PUBLIC_URL
    domain, _ = split_domain_port(request.get_host())
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{domain}:{app_settings.WSSERVER_PORT}{WEBSOCKET_PATH}"


@api_view("GET")
def ws_ticket(request):
    return JsonResponse(
        {
            "ticket": issue_ticket(request),
            "url": public_ws_url(request),
            "expires_in": app_settings.NOTIFICATIONS_TICKET_MAX_AGE,
        }
    )


@api_view("GET")
def notification_list(request):
    """Newest first, `limit` at a time, older than the event `before` for the next page."""
    try:
        limit = int_parameter(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        before = int_parameter(request, "before", None, 1)
    except BadParameter as error:
        return json_error(400, "bad_request", str(error))
    page, unread = feed.page(request.user, limit, before)
    next_url = None
    if len(page) > limit:
        page = page[:limit]
        next_url = f"{request.path}?{urlencode({'limit': limit, 'before': page[-1].pk})}"
    return JsonResponse(
        {
            "results": [{**event_payload(event), "read": event.read} for event in page],
            "unread_count": unread,
            "next": next_url,
        }
    )


@api_view("GET")
def unread_count(request):
    return JsonResponse({"unread_count": feed.unread_count(request.user)})


@api_view("POST")
def mark_read(request, event_id):
    event = feed.events_for(request.user).filter(pk=event_id).first()
    if event is None:
        return json_error(404, "not_found", f"No notification {event_id} for you.")
    feed.mark_read(request.user, event)
    return JsonResponse({"id": event.pk, "read": True, "unread_count": feed.unread_count(request.user)})


@api_view("POST")
def mark_all_read(request):
    feed.mark_all_read(request.user)
    return JsonResponse({"unread_count": feed.unread_count(request.user)})
