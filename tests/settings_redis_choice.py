"""
The project's settings with events carried by another Redis connection than django-redis's:
REDIS_CHOICE=django (Django's own RedisCache as the default cache) or REDIS_CHOICE=url (a
local-memory cache, and NOTIFICATIONS_REDIS_URL). For tests/test_redisconf.py's relays.
"""

import os

from project.settings import *  # noqa: F401,F403
from project.settings import REDIS_URL

if os.environ["REDIS_CHOICE"] == "django":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    NOTIFICATIONS_REDIS_URL = REDIS_URL
