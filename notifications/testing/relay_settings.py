"""
Settings of a relay that serves a site's tests (servers.relay_environment): the site's own
(NOTIFICATIONS_TEST_SETTINGS), with the databases the tests use and the Redis they publish to.
"""

import json
import os
from importlib import import_module

_site = import_module(os.environ["NOTIFICATIONS_TEST_SETTINGS"])
globals().update({name: getattr(_site, name) for name in dir(_site) if name.isupper()})

DATABASES = json.loads(os.environ["NOTIFICATIONS_TEST_DATABASES"])
NOTIFICATIONS_REDIS_URL = os.environ["NOTIFICATIONS_TEST_REDIS_URL"]
NOTIFICATIONS_BUNDLED_REDIS_DIR = None  # the tests' Redis is running: nothing to start
