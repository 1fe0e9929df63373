"""
Settings of the demo host site.

Everything that differs between machines comes from the environment, with development
defaults that are safe on a laptop: DEBUG on, a throwaway secret key, SQLite, and the bundled
Redis server (see notifications.devredis) when REDIS_URL is unset. Outside DEBUG, a missing
DJANGO_SECRET_KEY is an error rather than a silent default.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_list(name):
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY: it signs sessions and WebSocket tickets.")
    SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")

INSTALLED_APPS = [
    # notifications comes before django.contrib.admin: its admin/base_site.html puts the
    # notification bell in the header of every admin page.
    "notifications",
    "wsserver",
    "project",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # The demo's API authenticates with tokens too (POST /api/token/): the ticket endpoint accepts
    # them (NOTIFICATIONS_TICKET_AUTHENTICATION below), as a mobile app needs.
    "rest_framework",
    "rest_framework.authtoken",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions and before common, as Django documents: each request in its reader's
    # language (the language cookie, else Accept-Language, else LANGUAGE_CODE).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the relay read sessions while Django writes; the timeout rides out short locks.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }

# Redis: the bus between Django and the relay, reached through django-redis.
# Unset in development means the bundled server on a socket inside the project directory.
REDIS_URL = os.environ.get("REDIS_URL", "")
if not REDIS_URL and DEBUG:
    NOTIFICATIONS_BUNDLED_REDIS_DIR = BASE_DIR / ".redis"
    REDIS_URL = f"unix://{NOTIFICATIONS_BUNDLED_REDIS_DIR / 'redis.sock'}?db=0"
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            # Publishing happens inside requests: an unreachable Redis must cost seconds, not minutes.
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
    }
}
if not REDIS_URL:
    raise ImproperlyConfigured("Set REDIS_URL (e.g. redis://127.0.0.1:6379/0); it is required outside DEBUG.")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The languages readers may choose (the preferences' language, the language cookie) and that
# requests are served in; the app ships French, German and Arabic (right to left).
LANGUAGES = [
    ("en", "English"),
    ("fr", "Français"),
    ("de", "Deutsch"),
    ("ar", "العربية"),
]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# The notifications app and its relay (defaults live in notifications/conf.py).
# Models whose saves and deletes publish model.* events from any code path (admin edits of
# any model publish admin.* events without this). auth.User is not listed: every login saves it.
NOTIFICATIONS_TRACK_MODELS = env_list("NOTIFICATIONS_TRACK_MODELS")
# The Redis events travel through, when it is not the cache's: a Sentinel-managed primary
# (redis+sentinel://host1:26379,host2:26379/mymaster/0) or a Cluster (redis+cluster://host1:6379,...),
# which django-redis's default client cannot reach, or any Redis of their own.
NOTIFICATIONS_REDIS_URL = os.environ.get("NOTIFICATIONS_REDIS_URL", "")
# The Redis stream of this deployment (deployments sharing a Redis each need their own).
NOTIFICATIONS_STREAM_KEY = os.environ.get("NOTIFICATIONS_STREAM_KEY") or "notifications:events"
WSSERVER_PUBLIC_URL = os.environ.get("WSSERVER_PUBLIC_URL", "")
WSSERVER_ALLOWED_ORIGINS = env_list("WSSERVER_ALLOWED_ORIGINS")
# Where the relay serves /metrics and its detailed /healthz ("127.0.0.1:9765"); unset: /metrics
# on the relay's own port.
WSSERVER_METRICS_ADDRESS = os.environ.get("WSSERVER_METRICS_ADDRESS") or None
# permessage-deflate with the clients that offer it (docs/performance.md says when it pays).
WSSERVER_COMPRESSION = env_bool("WSSERVER_COMPRESSION", False)
# Who may ask for a WebSocket ticket: an API token (Authorization: Token <key>, from POST
# /api/token/), else the session of a logged-in page.
NOTIFICATIONS_TICKET_AUTHENTICATION = [
    "rest_framework.authentication.TokenAuthentication",
    "notifications.ticketauth.session_user",
]

# Web Push to users' devices: off until the keys are set (`python manage.py generate_vapid_keys --env`).
NOTIFICATIONS_VAPID_PUBLIC_KEY = os.environ.get("NOTIFICATIONS_VAPID_PUBLIC_KEY", "")
NOTIFICATIONS_VAPID_PRIVATE_KEY = os.environ.get("NOTIFICATIONS_VAPID_PRIVATE_KEY", "")
NOTIFICATIONS_VAPID_SUBJECT = os.environ.get("NOTIFICATIONS_VAPID_SUBJECT", "")
# Email digests (manage.py send_notification_digests, which needs it): the address their links
# point at, e.g. https://www.example.com; and where mail goes (EMAIL_HOST's SMTP server when set,
# the console in development otherwise).
NOTIFICATIONS_SITE_URL = os.environ.get("NOTIFICATIONS_SITE_URL", "")
EMAIL_HOST = os.environ.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = int(os.environ.get("EMAIL_PORT") or 25)
if DEBUG and not os.environ.get("EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "[{asctime}] {levelname} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "notifications": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "wsserver": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
