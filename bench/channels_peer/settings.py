"""
Settings of the Django Channels peer: the least a Channels deployment needs, nothing that would
slow it down (no database, no middleware, no authentication, no origin check).

BENCH_REDIS_URL names the Redis; BENCH_CHANNEL_LAYER picks the channels_redis layer:
"pubsub" (RedisPubSubChannelLayer, the default: the faster of the two here, see
docs/performance.md) or "core" (RedisChannelLayer).
"""

import os

SECRET_KEY = "channels-peer-benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE = []
DATABASES = {}
ROOT_URLCONF = None
USE_TZ = True
ASGI_APPLICATION = "channels_peer.asgi.application"

LAYERS = {
    "pubsub": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")]},
    },
    "core": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")],
            # The default, 100 messages waiting per channel, drops the rest of a burst.
            "capacity": 100_000,
            "expiry": 600,
        },
    },
}
CHANNEL_LAYERS = {"default": LAYERS[os.environ.get("BENCH_CHANNEL_LAYER", "pubsub")]}
