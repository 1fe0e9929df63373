"""
HTTP endpoints of the notifications app: JSON in, JSON out, session authentication (the
ticket endpoint: the site's choice, see ticketauth.py).

Every answer is JSON, errors included, so the widget never has to parse an HTML error page:
401 when not logged in, 400 for bad parameters or a body that is not valid (naming each field
at fault), 403 for a failed CSRF check, 404 for an event not in the user's feed, 405 for a wrong
method, 413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, and 503 with Retry-After while Redis or
the database is unreachable (the widget then retries with its backoff instead of giving up).
"""

import json
import logging
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import translation
from django.utils.decorators import decorator_from_middleware
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from . import feed, preferences, readstate, redisaddress, rendering, ticketauth
from .conf import WEBSOCKET_PATH, app_settings
from .models import DigestFrequency, Preferences
from .publishing import event_payload
from .tickets import issue_ticket
from .webpush import lifetime, subscriptions, vapid

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


def json_endpoint(*methods):
    """
    Allowed methods, never cached, and a 503 while a backend is down. CSRF is the view's to
    check (csrf_exempt here): api_view checks it for every request, ws_ticket for those its
    authentication asks it for.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return json_error(405, "method_not_allowed", f"Use {' or '.join(methods)}.", Allow=", ".join(methods))
            try:
                return view(request, *args, **kwargs)
            except REDIS_ERRORS + DATABASE_ERRORS as error:
                return unavailable(request, error)

        return csrf_exempt(never_cache(wrapper))

    return decorator


def api_view(*methods):
    """
    A JSON endpoint for the logged-in user (session authentication) with Django's CSRF check.
    The user is looked up inside json_endpoint (request.user is lazy, and its session may live
    in the database), so an outage met there is answered like one in the view.
    """

    def decorator(view):
        @wraps(view)
        def logged_in(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return json_error(401, "not_authenticated", "Log in first.")
            return view(request, *args, **kwargs)

        return json_endpoint(*methods)(decorator_from_middleware(JsonCsrfViewMiddleware)(logged_in))

    return decorator


def csrf_rejection(request):
    """Django's CSRF check on this request, as the middleware would run it: the JSON 403, or None."""
    check = JsonCsrfViewMiddleware(lambda request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


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


@json_endpoint("GET", "POST")
def ws_ticket(request):
    """
    A ticket for whoever NOTIFICATIONS_TICKET_AUTHENTICATION says the request comes from
    (ticketauth.py): GET as the widget asks, POST as an API client does (CSRF checked when the
    authentication was a cookie's).
    """
    try:
        found = ticketauth.authenticate(request)
    except ticketauth.Refused as refusal:
        return json_error(refusal.status, refusal.code, str(refusal), **refusal.headers)
    if found is None:
        return json_error(401, "not_authenticated", "Log in first, or send the credentials of the site's API.")
    user, authenticator = found
    if authenticator.csrf_checked_here:  # Django's check passes safe methods (the widget's GET)
        rejection = csrf_rejection(request)
        if rejection is not None:
            return rejection
    return JsonResponse(
        {
            "ticket": issue_ticket(user, ticketauth.session_key_for(request, user)),
            "url": public_ws_url(request),
            "expires_in": app_settings.NOTIFICATIONS_TICKET_MAX_AGE,
        }
    )


def language_and_mutes(user):
    """(language, mutes) the user reads in: their chosen language, else the request's; one query, whatever a page's length."""
    choices = preferences.choices_for(user)
    return rendering.reader_language(choices.language or translation.get_language()), choices.mutes


def event_item(event, language, mutes):
    """An event of a feed (with its `read` annotation) as the API answers it, in `language`."""
    return {**rendering.rendered(event_payload(event), language), "read": event.read, "muted": mutes.matches_event(event)}


@api_view("GET")
def notification_list(request):
    """
    Newest first, `limit` at a time, older than the event `before` for the next page; with
    `grouped=1`, each burst as one item (group_views.py), `before` then being a group id.
    """
    try:
        limit = int_parameter(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        before = int_parameter(request, "before", None, 1)
        grouped = int_parameter(request, "grouped", 0, 0, 1)
    except BadParameter as error:
        return json_error(400, "bad_request", str(error))
    if grouped:
        from .group_views import grouped_list  # it builds on this module's helpers

        return grouped_list(request, limit, before)
    page, unread = feed.page(request.user, limit, before)
    next_url = None
    if len(page) > limit:
        page = page[:limit]
        next_url = f"{request.path}?{urlencode({'limit': limit, 'before': page[-1].pk})}"
    language, mutes = language_and_mutes(request.user)
    return JsonResponse(
        {
            "results": [event_item(event, language, mutes) for event in page],
            "unread_count": unread,
            "next": next_url,
        }
    )


@api_view("GET")
def unread_count(request):
    return JsonResponse({"unread_count": feed.unread_count(request.user)})


@api_view("POST")
def mark_read(request, event_id):
    if not readstate.mark_read(request.user, event_id):
        return json_error(404, "not_found", f"No notification {event_id} for you.")
    return JsonResponse({"id": event_id, "read": True, "unread_count": feed.unread_count(request.user)})


@api_view("POST")
def mark_all_read(request):
    readstate.mark_all_read(request.user)
    return JsonResponse({"unread_count": feed.unread_count(request.user)})


class BadBody(ValueError):
    pass


def json_object(request):
    """The request's JSON body. BadBody says why there is none; RequestDataTooBig (a 413) passes through."""
    if request.content_type != "application/json":
        sent = f"not {request.content_type!r}" if request.content_type else "with a Content-Type header"
        raise BadBody(f"Send the body as application/json, {sent}.")
    try:
        return json.loads(request.body)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BadBody(f"The body is not valid JSON: {error}.") from None


def invalid(errors):
    """400 naming each field at fault ("__all__": the body as a whole), as the widget shows them."""
    message = " ".join(f"{name}: {text}" if name != "__all__" else text for name, texts in errors.items() for text in texts)
    return JsonResponse({"error": "invalid", "message": message, "errors": errors}, status=400)


def preferences_body(user):
    """What GET answers, and PUT and PATCH after a change: the Choices that apply, and how they came to be."""
    row = Preferences.objects.filter(user_id=user.pk).first()
    return {
        "preferences": preferences.applied(row).as_json(),
        "chosen": preferences.chosen(row),
        "defaults": preferences.applied(None).as_json(),
        "options": {
            "digest": [{"value": value, "label": str(label)} for value, label in DigestFrequency.choices],
            "languages": [{"code": code, "name": gettext(name)} for code, name in settings.LANGUAGES],
        },
    }


def parsed_body(request):
    """(the request's JSON object, None), or (None, the 400 or 413 answer naming what is wrong with its body)."""
    try:
        return json_object(request), None
    except RequestDataTooBig:
        return None, json_error(413, "too_large", f"The body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    except BadBody as error:
        return None, invalid({"__all__": [str(error)]})


@api_view("GET", "PUT", "PATCH")
def preferences_view(request):
    """
    The user's notification preferences. PUT sets every field (one left out, or null, follows the
    site's default); PATCH only those it names. Either answers as GET does, the change applied.
    """
    if request.method != "GET":
        data, refused = parsed_body(request)
        if refused is not None:
            return refused
        try:
            preferences.update(request.user, data, partial=request.method == "PATCH")
        except ValidationError as error:
            return invalid(error.message_dict)
    return JsonResponse(preferences_body(request.user))


@api_view("POST", "DELETE")
def push_subscriptions(request):
    """
    Subscribe this device to Web Push (POST the browser's PushSubscription.toJSON(): 201, or 200
    when the endpoint was known), or unsubscribe it (DELETE {"endpoint": ...}: 204). 404
    push_disabled while the site has no VAPID keys. A subscription ends with the login that
    made it (webpush.lifetime).
    """
    data, refused = push_request_body(request)
    if refused is not None:
        return refused
    try:
        if request.method == "DELETE":
            subscriptions.unsubscribe(request.user, data)
            return HttpResponse(status=204)
        user_agent = request.headers.get("User-Agent", "")
        subscription, created = subscriptions.subscribe(request.user, data, user_agent, lifetime.login_id(request))
    except ValidationError as error:
        return invalid(error.message_dict)
    if not lifetime.still_valid(subscription, request):  # the login ended meanwhile
        return json_error(401, "not_authenticated", "Log in first.")
    return JsonResponse({"id": subscription.pk}, status=201 if created else 200)


@api_view("POST")
def push_subscription_held(request):
    """
    Whether the server holds this browser's subscription for this user (POST {"endpoint"}: 200
    {"id"}, taken over by this login; 404 not_subscribed: the browser should drop it). A POST,
    not a GET: the endpoint stays out of URLs and their logs, and the answer changes the row.
    """
    data, refused = push_request_body(request)
    if refused is not None:
        return refused
    try:
        subscription = subscriptions.held(request.user, data)
    except ValidationError as error:
        return invalid(error.message_dict)
    taken = subscription is not None and lifetime.take_over(subscription, lifetime.login_id(request))
    if taken and not lifetime.still_valid(subscription, request):
        subscription = None  # its login ended while this request took it over: deleted
    if subscription is None:
        return json_error(
            404,
            "not_subscribed",
            "This user has no subscription of that endpoint (it ended with a logout or a new "
            "password, or is another user's): the browser should drop it.",
        )
    return JsonResponse({"id": subscription.pk})


def push_request_body(request):
    """parsed_body(), unless the site has no VAPID keys: then (None, 404 push_disabled)."""
    if not vapid.enabled():
        return None, json_error(404, "push_disabled", "Web Push is not configured on this site.")
    return parsed_body(request)
