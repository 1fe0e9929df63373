"""
The project's settings with the push services a test runs (NOTIFICATIONS_PUSH_SERVICES, a JSON
list in the environment) and its push rate (NOTIFICATIONS_PUSH_RATE); the VAPID keys come from
the environment as in project/settings.py.
"""

import json
import os

from project.settings import *  # noqa: F401,F403

NOTIFICATIONS_PUSH_SERVICES = json.loads(os.environ["NOTIFICATIONS_PUSH_SERVICES"])
if os.environ.get("NOTIFICATIONS_PUSH_RATE"):
    NOTIFICATIONS_PUSH_RATE = int(os.environ["NOTIFICATIONS_PUSH_RATE"])
