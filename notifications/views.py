"""HTTP endpoints of the notifications app: JSON in, JSON out, session authentication."""

from functools import wraps

from django.http import JsonResponse
from django.http.request import split_domain_port
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .conf import WEBSOCKET_PATH, app_settings
from .tickets import issue_ticket


def json_login_required(view):
    """Like login_required, but answers 401 with a JSON error instead of redirecting."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "not_authenticated", "message": "Log in first."}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


def public_ws_url(request):
    """WSSERVER_PUBLIC_URL, or the relay on the host this request came to, at WSSERVER_PORT."""
    if app_settings.WSSERVER_PUBLIC_URL:
        return app_settings.WSSERVER_PUBLIC_URL
    domain, _ = split_domain_port(request.get_host())
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{domain}:{app_settings.WSSERVER_PORT}{WEBSOCKET_PATH}"


@require_GET
@never_cache
@json_login_required
def ws_ticket(request):
    return JsonResponse(
        {
            "ticket": issue_ticket(request),
            "url": public_ws_url(request),
            "expires_in": app_settings.NOTIFICATIONS_TICKET_MAX_AGE,
        }
    )
