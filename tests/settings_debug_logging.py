"""
The project's settings with every logger at DEBUG, for the servers of tests/test_secrets.py
(project/settings.py fixes the app's loggers at INFO and reads no log level from the
environment). One third-party logger stays at INFO because at DEBUG it logs SQL parameters,
session keys included, by design: `django.db.backends` (docs/security.md). websockets' own log
is at DEBUG here too: the relay caps it at WARNING itself, which this test proves.

The MD5 hasher, as in the test process (tests/conftest.py), so runserver can check the password
of a user the test created.
"""

from project.settings import *  # noqa: F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "[{asctime}] {levelname} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "level": "DEBUG"}},
    "root": {"handlers": ["console"], "level": "DEBUG"},
    "loggers": {
        "notifications": {"handlers": ["console"], "level": "DEBUG", "propagate": False},
        "wsserver": {"handlers": ["console"], "level": "DEBUG", "propagate": False},
        "django": {"handlers": ["console"], "level": "DEBUG", "propagate": False},
        "django.db.backends": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
