"""
System checks: `manage.py check` names each misconfiguration and how to fix it, instead of
leaving it to surface as a bell that never rings.
"""

import re
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.template import engines
from django.template.backends.django import DjangoTemplates

from . import preferences, redisaddress, redisconf, ticketauth
from .conf import app_settings
from .webpush import vapid

WIDGET_SCRIPT = "notifications/widget.js"
CONTEXT_PROCESSORS = ("django.template.context_processors.request", "django.contrib.auth.context_processors.auth")


@register(Tags.caches)
def check_redis(app_configs, **kwargs):
    """
    Events need a Redis: NOTIFICATIONS_REDIS_URL (one server, Sentinel or Cluster), or a Redis
    cache (either backend, django-redis's Sentinel client included) under
    NOTIFICATIONS_REDIS_ALIAS, whose calls cannot hang a request for long. Outside DEBUG, a real
    one rather than the bundled one.
    """
    alias = app_settings.NOTIFICATIONS_REDIS_ALIAS
    own_url = app_settings.NOTIFICATIONS_REDIS_URL
    found = []
    if own_url:
        problem = _address_problem(own_url)
        if problem:
            return [problem]
        location = own_url
    else:
        cache = settings.CACHES.get(alias)
        if cache is None or cache.get("BACKEND") not in redisconf.REDIS_BACKENDS:
            return [
                Error(
                    f"Notifications have no Redis: NOTIFICATIONS_REDIS_URL is not set and CACHES[{alias!r}] is not a "
                    "Redis cache.",
                    hint="Either set NOTIFICATIONS_REDIS_URL = 'redis://host:6379/0' (events get a Redis of their own), "
                    f"or make CACHES[{alias!r}] a Redis cache, with Django's "
                    f"'{redisconf.DJANGO_BACKEND}' or django-redis's '{redisconf.DJANGO_REDIS_BACKEND}' "
                    "(events share its connections); NOTIFICATIONS_REDIS_ALIAS names another cache.",
                    id="notifications.E001",
                )
            ]
        location = cache.get("LOCATION")
        if location and (cache.get("OPTIONS") or {}).get("SENTINELS"):
            found += _sentinel_cache_problems(alias)
        timeouts = _missing_timeouts(cache)
        if timeouts:
            found.append(
                Warning(
                    f"CACHES[{alias!r}] sets no Redis socket timeouts: while Redis is unreachable, each request that "
                    "notifies may hang for minutes (the operating system's TCP timeouts) instead of seconds.",
                    hint=f"Add {timeouts} to its OPTIONS, or give events a Redis of their own with "
                    f"NOTIFICATIONS_REDIS_URL (its client has {redisconf.TIMEOUT}-second timeouts).",
                    id="notifications.W003",
                )
            )
    if not settings.DEBUG and (not location or app_settings.NOTIFICATIONS_BUNDLED_REDIS_DIR):
        found.append(
            Error(
                "No Redis server is configured, outside DEBUG.",
                hint=f"Set {redisconf.source()} to your Redis server; the bundled one is for development.",
                id="notifications.E002",
            )
        )
    return found


ADDRESS_FORMS = {
    None: (
        "notifications.E007",
        "is not a Redis URL",
        "Use redis://host:6379/0, rediss://host:6380/0 (TLS), unix:///path/redis.sock?db=0, "
        "redis+sentinel://host1:26379,host2:26379/mymaster/0 (Sentinel) or redis+cluster://host1:6379,host2:6379 "
        "(Cluster).",
    ),
    redisaddress.SENTINEL: (
        "notifications.E008",
        "is not a Sentinel address",
        "Write redis+sentinel://[:password@]host1:26379,host2:26379/<service name>/<database> (rediss+sentinel:// "
        "for TLS; ?sentinel_password=... for Sentinels with a password of their own).",
    ),
    redisaddress.CLUSTER: (
        "notifications.E009",
        "is not a Cluster address",
        "Write redis+cluster://[:password@]host1:6379,host2:6379 (rediss+cluster:// for TLS): one or more of "
        "its nodes.",
    ),
}


def _address_problem(url):
    """An Error naming what is wrong with NOTIFICATIONS_REDIS_URL, or None."""
    try:
        redisaddress.parse(url)
    except redisaddress.BadAddress as error:
        check_id, what, hint = ADDRESS_FORMS[redisaddress.KINDS.get(urlsplit(url).scheme)]
        return Error(f"NOTIFICATIONS_REDIS_URL {redisconf.redacted(url)!r} {what}: {error}.", hint=hint, id=check_id)
    return None


def _sentinel_cache_problems(alias):
    """A django-redis Sentinel cache the relay could not follow (it reads SENTINELS and LOCATION)."""
    try:
        redisaddress.parse(redisconf.url())
    except (redisaddress.BadAddress, TypeError, ValueError) as error:
        return [
            Error(
                f"CACHES[{alias!r}] is a django-redis Sentinel cache whose address the relay cannot read: {error}.",
                hint="Its LOCATION must be redis://[:password@]<service name>/<database> and its OPTIONS['SENTINELS'] a "
                "list of (host, port); or give events NOTIFICATIONS_REDIS_URL = "
                "'redis+sentinel://host1:26379,host2:26379/<service name>/<database>'.",
                id="notifications.E010",
            )
        ]
    return []


# The OPTIONS of each Redis cache backend that bound how long a call may hang.
TIMEOUT_OPTIONS = {
    redisconf.DJANGO_BACKEND: ("socket_connect_timeout", "socket_timeout"),
    redisconf.DJANGO_REDIS_BACKEND: ("SOCKET_CONNECT_TIMEOUT", "SOCKET_TIMEOUT"),
}


def _missing_timeouts(cache):
    """The timeout OPTIONS the Redis cache lacks, with suggested values: {} when it has them."""
    options = cache.get("OPTIONS") or {}
    return {name: redisconf.TIMEOUT for name in TIMEOUT_OPTIONS[cache["BACKEND"]] if options.get(name) is None}


@register(Tags.security)
def check_origins(app_configs, **kwargs):
    errors = []
    hosts = [host for host in settings.ALLOWED_HOSTS if host != "*"]
    if not settings.DEBUG and not hosts and not app_settings.WSSERVER_ALLOWED_ORIGINS:
        errors.append(
            Error(
                "No origin may open a WebSocket with the session cookie: the relay will refuse every browser "
                "that sends it (HTTP 403).",
                hint="List your site's hosts in ALLOWED_HOSTS, or its origins (https://app.example.com) in "
                "WSSERVER_ALLOWED_ORIGINS.",
                id="notifications.E003",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Warning(
                "'*' in ALLOWED_HOSTS allows no WebSocket origin: it would let any site use your visitors' sessions.",
                hint="List the origins pages are served from in WSSERVER_ALLOWED_ORIGINS.",
                id="notifications.W001",
            )
        )
    return errors


@register(Tags.templates)
def check_widget(app_configs, **kwargs):
    errors = []
    if not apps.is_installed("django.contrib.staticfiles"):
        errors.append(
            Error(
                "django.contrib.staticfiles is not installed: the widget's script and styles cannot be served.",
                hint="Add 'django.contrib.staticfiles' to INSTALLED_APPS.",
                id="notifications.E004",
            )
        )
    elif not finders.find(WIDGET_SCRIPT):
        errors.append(
            Error(
                f"The widget's static file {WIDGET_SCRIPT} cannot be found.",
                hint="Keep 'django.contrib.staticfiles.finders.AppDirectoriesFinder' in STATICFILES_FINDERS.",
                id="notifications.E005",
            )
        )
    django_engines = [engine for engine in engines.all() if isinstance(engine, DjangoTemplates)]
    for engine in django_engines:
        missing = [name for name in CONTEXT_PROCESSORS if name not in engine.engine.context_processors]
        if missing:
            errors.append(
                Error(
                    f"Template engine {engine.name!r} lacks context processors the widget needs: {', '.join(missing)}.",
                    hint="Add them to TEMPLATES[...]['OPTIONS']['context_processors'].",
                    id="notifications.E006",
                )
            )
    names = [config.name for config in apps.get_app_configs()]
    if "django.contrib.admin" in names and names.index("django.contrib.admin") < names.index("notifications"):
        errors.append(
            Warning(
                "django.contrib.admin comes before notifications in INSTALLED_APPS: the admin will show no "
                "notification bell.",
                hint="List 'notifications' above 'django.contrib.admin'.",
                id="notifications.W002",
            )
        )
    return errors


@register(Tags.security)
def check_ticket_authentication(app_configs, **kwargs):
    """NOTIFICATIONS_TICKET_AUTHENTICATION names what can authenticate a request (ticketauth.py)."""
    errors = []
    try:
        authenticators = ticketauth.authenticators()
    except ImproperlyConfigured as error:
        authenticators = []
        errors.append(
            Error(
                str(error),
                hint="List dotted paths of Django REST framework authentication classes (e.g. "
                "'rest_framework.authentication.TokenAuthentication', with djangorestframework installed) or of "
                "callables taking the request and returning a user or None; the default is "
                "['notifications.ticketauth.session_user'].",
                id="notifications.E011",
            )
        )
    for authenticator in authenticators:
        if _needs_authtoken(authenticator.target):
            errors.append(
                Error(
                    f"{ticketauth.SETTING}: {authenticator.path!r} keeps its tokens in rest_framework.authtoken, "
                    "which is not installed.",
                    hint="Add 'rest_framework.authtoken' to INSTALLED_APPS (then migrate).",
                    id="notifications.E012",
                )
            )
    age = app_settings.NOTIFICATIONS_API_SESSION_AGE
    if isinstance(age, bool) or not isinstance(age, int) or age <= 0:
        errors.append(
            Error(
                f"NOTIFICATIONS_API_SESSION_AGE must be a whole number of seconds above 0, not {age!r}.",
                hint="It is how long a socket opened with an API token's ticket stays open (default 3600).",
                id="notifications.E013",
            )
        )
    return errors


def _needs_authtoken(target):
    """A DRF TokenAuthentication keeping DRF's own Token model, without its app."""
    if not isinstance(target, type) or apps.is_installed("rest_framework.authtoken"):
        return False
    try:
        from rest_framework.authentication import TokenAuthentication
    except ImportError:
        return False
    return issubclass(target, TokenAuthentication) and target.model is None


# What each default of NOTIFICATIONS_PREFERENCES may be, said as the fix.
PREFERENCE_HINTS = {
    "toasts": "Set 'toasts' to True or False (built-in: True).",
    "digest": "Set 'digest' to one of 'off', 'hourly', 'daily', 'weekly' (built-in: 'off').",
    "push": "Set 'push' to True or False (built-in: True).",
    "language": "Set 'language' to a code of LANGUAGES, or '' for the site's own language (built-in: '').",
    "muted_kinds": "Set 'muted_kinds' to a list of event kinds, e.g. ['model.updated'] (built-in: []).",
    "muted_topics": "Set 'muted_topics' to a list of model or object topics, e.g. ['model:shop.order', "
    "'object:shop.order:5'] (built-in: []).",
}


@register()
def check_preferences(app_configs, **kwargs):
    """
    NOTIFICATIONS_PREFERENCES, the site's defaults of every user's preferences: each a value a
    user could choose (preferences.clean, so both are judged alike), none null (a default has
    nothing under it to fall back to), and mutes written as events name them, or they would
    never match.
    """
    given = app_settings.NOTIFICATIONS_PREFERENCES
    if not isinstance(given, dict):
        return [
            Error(
                f"NOTIFICATIONS_PREFERENCES must be a dict of default preferences, not {given!r}.",
                hint="For example {'digest': 'daily', 'muted_kinds': ['model.updated']}; leave out what keeps its "
                "built-in default.",
                id="notifications.E014",
            )
        ]
    defaults = {name: list(value) if isinstance(value, tuple) else value for name, value in given.items()}
    try:
        cleaned, problems = preferences.clean(defaults, partial=True), {}
    except ValidationError as error:
        cleaned, problems = {}, error.message_dict
    for name, value in defaults.items():
        if name in problems:
            continue
        if value is None:
            problems[name] = ["None cannot be a default (nothing lies under it): give a value, or leave the key out."]
        elif name.startswith("muted_") and cleaned[name] != value:
            problems[name] = [f"Write {cleaned[name]!r}, as events name them: written otherwise, they never match."]
    return [
        Error(
            f"NOTIFICATIONS_PREFERENCES[{name!r}]: {' '.join(messages)}",
            hint=PREFERENCE_HINTS.get(name, f"Remove {name!r}; the defaults are {', '.join(preferences.CHOICES)}."),
            id="notifications.E014",
        )
        for name, messages in problems.items()
    ]
@register(Tags.security)
def check_push(app_configs, **kwargs):
    """Web Push settings (notifications.webpush): a key pair that belongs together, a subject, sane limits."""
    errors = []
    key_problem = vapid.key_problem()
    if key_problem:
        errors.append(
            Error(
                f"Web Push is misconfigured: {key_problem}.",
                hint="Run `python manage.py generate_vapid_keys` and copy both lines it prints into your settings "
                "(keep the private key secret); leave both keys empty to turn Web Push off.",
                id="notifications.E030",
            )
        )
    subject_problem = vapid.subject_problem()
    if subject_problem:
        errors.append(
            Error(
                f"Web Push is misconfigured: {subject_problem}.",
                hint="Set NOTIFICATIONS_VAPID_SUBJECT = 'mailto:ops@example.com' (or an https: URL of the site): "
                "push services write there when this site's pushes cause trouble.",
                id="notifications.E031",
            )
        )
    for name in ("NOTIFICATIONS_PUSH_RATE", "NOTIFICATIONS_PUSH_TTL"):
        value = getattr(app_settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            errors.append(
                Error(
                    f"{name} must be a whole number above 0, not {value!r}.",
                    hint="NOTIFICATIONS_PUSH_RATE: pushes a minute per user (default 10); NOTIFICATIONS_PUSH_TTL: "
                    "seconds a push service keeps a message for an offline device (default 86400).",
                    id="notifications.E032",
                )
            )
    if not isinstance(app_settings.NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT, bool):
        errors.append(
            Error(
                f"NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT must be True or False, not {app_settings.NOTIFICATIONS_PUSH_ENDS_AT_LOGOUT!r}.",
                hint="True (the default): logging out ends the push subscriptions made in that login; "
                "False: a device keeps getting its user's pushes after they log out of it.",
                id="notifications.E034",
            )
        )
    malformed = _malformed_services(app_settings.NOTIFICATIONS_PUSH_SERVICES)
    if malformed:
        errors.append(
            Error(
                f"NOTIFICATIONS_PUSH_SERVICES must be a list of origins; {malformed[0]!r} is not one.",
                hint="List origins such as 'https://fcm.googleapis.com' or 'https://*.notify.windows.com' (no path): "
                "subscriptions to any other endpoint are refused.",
                id="notifications.E033",
            )
        )
    return errors


PUSH_SERVICE = re.compile(r"https?://(\*\.)?[A-Za-z0-9.-]+(:\d+)?")


def _malformed_services(services):
    if not isinstance(services, (list, tuple)):
        return [services]
    return [service for service in services if not isinstance(service, str) or not PUSH_SERVICE.fullmatch(service)]


@register()
def check_digests(app_configs, **kwargs):
    """
    Digest emails (notifications.digests) link to the site, and to their unsubscribe page, by
    NOTIFICATIONS_SITE_URL; mail providers act on a one-click unsubscribe link (RFC 8058) only
    over https. Without the setting, `send_notification_digests` refuses to run.
    """
    from .digest_mail import site_url_problem
    from .digests import LEASE_MARGIN

    found = []
    given = app_settings.NOTIFICATIONS_PREFERENCES
    digests_by_default = isinstance(given, dict) and given.get("digest", "off") != "off"  # else E014 says what is wrong
    url = app_settings.NOTIFICATIONS_SITE_URL
    if url:
        problem = site_url_problem()
        if problem:
            found.append(Error(str(problem), hint="Set it to the address users reach the site at.", id="notifications.E020"))
        elif urlsplit(url).scheme != "https" and not settings.DEBUG:
            found.append(
                Warning(
                    f"NOTIFICATIONS_SITE_URL {url!r} is not https: mail providers ignore a one-click unsubscribe "
                    "link (RFC 8058) over http, and links in emails would travel in the clear.",
                    hint="Use the site's https address.",
                    id="notifications.W020",
                )
            )
    elif digests_by_default:
        found.append(
            Error(
                "Email digests are on by default (NOTIFICATIONS_PREFERENCES) but NOTIFICATIONS_SITE_URL is not set: "
                "their links cannot be made.",
                hint="Set NOTIFICATIONS_SITE_URL = 'https://www.example.com' (the address users reach the site at).",
                id="notifications.E021",
            )
        )
    lease, items = app_settings.NOTIFICATIONS_DIGEST_LEASE, app_settings.NOTIFICATIONS_DIGEST_MAX_ITEMS
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or lease <= LEASE_MARGIN:
        found.append(
            Error(
                f"NOTIFICATIONS_DIGEST_LEASE must be a number of seconds above {LEASE_MARGIN}, not {lease!r}: a digest run "
                f"stops sending {LEASE_MARGIN} s before its lease ends.",
                hint="The default is 600; give it more than a batch of 100 emails takes to send.",
                id="notifications.E022",
            )
        )
    if isinstance(items, bool) or not isinstance(items, int) or items < 1:
        found.append(
            Error(
                f"NOTIFICATIONS_DIGEST_MAX_ITEMS must be a whole number above 0, not {items!r}.",
                hint="How many notifications one digest email lists (default 50).",
                id="notifications.E023",
            )
        )
    return found


@register()
def check_grouping(app_configs, **kwargs):
    """NOTIFICATIONS_GROUP_WINDOW is seconds (bursts.py): a number at least 0, or None."""
    window = app_settings.NOTIFICATIONS_GROUP_WINDOW
    if window is None or (isinstance(window, (int, float)) and not isinstance(window, bool) and window >= 0):
        return []
    return [
        Error(
            f"NOTIFICATIONS_GROUP_WINDOW must be a number of seconds (0 or None: no grouping), not {window!r}.",
            hint="Set it to the seconds within which an actor's events of one kind about one model are one group, e.g. 60.",
            id="notifications.E040",
        )
    ]
