"""System checks: each misconfiguration is reported with its id; the demo configuration is clean."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from notifications import checks
from wsserver.checks import check_compression

DJANGO_REDIS = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}
TIMEOUTS = {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2}
REDIS = {"default": {**DJANGO_REDIS, "OPTIONS": TIMEOUTS}}


def ids(messages):
    return [message.id for message in messages]


def test_the_project_passes_every_check():
    call_command("check", fail_level="WARNING")


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
def test_a_cache_that_is_not_redis():
    assert ids(checks.check_redis(None)) == ["notifications.E001"]


@pytest.mark.parametrize(
    "cache, expected",
    [
        (DJANGO_REDIS, ["notifications.W003"]),
        ({**DJANGO_REDIS, "OPTIONS": {"SOCKET_TIMEOUT": 2}}, ["notifications.W003"]),
        ({**DJANGO_REDIS, "OPTIONS": TIMEOUTS}, []),
        ({"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}, ["notifications.W003"]),
        (
            {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": "redis://127.0.0.1:6379/0",
                "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
            },
            [],
        ),
    ],
)
def test_a_redis_cache_needs_socket_timeouts(cache, expected):
    with override_settings(CACHES={"default": cache}):
        messages = checks.check_redis(None)
        assert ids(messages) == expected
        if expected:
            assert "OPTIONS" in messages[0].hint


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"DEBUG": False, "CACHES": {"default": {**REDIS["default"], "LOCATION": ""}}}, ["notifications.E002"]),
        ({"DEBUG": False, "CACHES": REDIS, "NOTIFICATIONS_BUNDLED_REDIS_DIR": "/tmp/bundled"}, ["notifications.E002"]),
        ({"DEBUG": True, "CACHES": REDIS, "NOTIFICATIONS_BUNDLED_REDIS_DIR": "/tmp/bundled"}, []),
        ({"DEBUG": False, "CACHES": REDIS, "NOTIFICATIONS_BUNDLED_REDIS_DIR": None}, []),
    ],
)
def test_a_real_redis_is_required_outside_debug(overrides, expected):
    with override_settings(**overrides):
        assert ids(checks.check_redis(None)) == expected


SENTINEL_CACHE = {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": "redis://mymaster/0",
    "OPTIONS": {"CLIENT_CLASS": "django_redis.client.SentinelClient", "SENTINELS": [("10.0.0.1", 26379)], **TIMEOUTS},
}


@pytest.mark.parametrize(
    "overrides, expected, words",
    [
        ({"NOTIFICATIONS_REDIS_URL": "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"}, [], ""),
        ({"NOTIFICATIONS_REDIS_URL": "redis+cluster://10.0.0.1:6379,10.0.0.2:6379"}, [], ""),
        ({"NOTIFICATIONS_REDIS_URL": "http://10.0.0.1:6379/0"}, ["notifications.E007"], "redis+sentinel://"),
        ({"NOTIFICATIONS_REDIS_URL": "redis+sentinel://:secret@10.0.0.1:26379"}, ["notifications.E008"], "/<service name>/"),
        ({"NOTIFICATIONS_REDIS_URL": "redis+sentinel://10.0.0.1:port/mymaster/0"}, ["notifications.E008"], "port"),
        ({"NOTIFICATIONS_REDIS_URL": "redis+cluster://10.0.0.1:6379/2"}, ["notifications.E009"], "database 0 only"),
        ({"CACHES": {"default": SENTINEL_CACHE}}, [], ""),
        ({"CACHES": {"default": {**SENTINEL_CACHE, "LOCATION": "redis://"}}}, ["notifications.E010"], "SENTINELS"),
        ({"CACHES": {"default": {**SENTINEL_CACHE, "OPTIONS": {**SENTINEL_CACHE["OPTIONS"], "SENTINELS": ["10.0.0.1"]}}}}, ["notifications.E010"], "(host, port)"),
    ],
)
def test_sentinel_and_cluster_addresses_are_checked(overrides, expected, words):
    with override_settings(**overrides):
        messages = checks.check_redis(None)
    assert ids(messages) == expected
    if expected:
        assert words in messages[0].msg + messages[0].hint and "secret" not in messages[0].msg


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"DEBUG": False, "ALLOWED_HOSTS": [], "WSSERVER_ALLOWED_ORIGINS": []}, ["notifications.E003"]),
        ({"DEBUG": False, "ALLOWED_HOSTS": ["*"], "WSSERVER_ALLOWED_ORIGINS": []}, ["notifications.E003", "notifications.W001"]),
        ({"DEBUG": False, "ALLOWED_HOSTS": ["*"], "WSSERVER_ALLOWED_ORIGINS": ["https://a.example"]}, ["notifications.W001"]),
        ({"DEBUG": False, "ALLOWED_HOSTS": ["example.com"], "WSSERVER_ALLOWED_ORIGINS": []}, []),
        ({"DEBUG": True, "ALLOWED_HOSTS": [], "WSSERVER_ALLOWED_ORIGINS": []}, []),
    ],
)
def test_origins_must_be_allowed_outside_debug(overrides, expected):
    with override_settings(**overrides):
        assert ids(checks.check_origins(None)) == expected


def test_the_widget_needs_its_static_files():
    with override_settings(STATICFILES_FINDERS=["django.contrib.staticfiles.finders.FileSystemFinder"]):
        assert "notifications.E005" in ids(checks.check_widget(None))


def test_the_widget_needs_the_request_and_auth_context(settings):
    engine = {**settings.TEMPLATES[0], "OPTIONS": {"context_processors": []}}
    with override_settings(TEMPLATES=[engine]):
        [error] = [m for m in checks.check_widget(None) if m.id == "notifications.E006"]
    assert "django.template.context_processors.request" in error.msg
    assert "django.contrib.auth.context_processors.auth" in error.msg


def test_check_command_fails_on_errors():
    with override_settings(DEBUG=False, ALLOWED_HOSTS=[], WSSERVER_ALLOWED_ORIGINS=[]):
        with pytest.raises(SystemCheckError, match="notifications.E003"):
            call_command("check")


def test_the_admin_header_needs_notifications_above_the_admin(settings):
    reordered = [app for app in settings.INSTALLED_APPS if app != "notifications"] + ["notifications"]
    with override_settings(INSTALLED_APPS=reordered):
        assert "notifications.W002" in ids(checks.check_widget(None))
    assert "notifications.W002" not in ids(checks.check_widget(None))


@pytest.mark.parametrize("value, expected", [(False, []), (True, []), ("yes", ["wsserver.E002"]), (1, ["wsserver.E002"])])
def test_compression_is_true_or_false(value, expected):
    with override_settings(WSSERVER_COMPRESSION=value):
        assert ids(check_compression(None)) == expected
