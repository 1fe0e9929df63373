"""
The project's settings with the relay's timings and limits taken from the environment, so a test
can make a relay re-check every second, replay less, ping often or go without presence:
WSSERVER_RECHECK_INTERVAL, WSSERVER_REPLAY_RATE, WSSERVER_REPLAY_BURST, WSSERVER_PING_INTERVAL
(numbers), NOTIFICATIONS_PRESENCE ("0" or "1"); unset: the defaults.
"""

import os

from project.settings import *  # noqa: F401,F403

for _name in ("WSSERVER_RECHECK_INTERVAL", "WSSERVER_REPLAY_RATE", "WSSERVER_REPLAY_BURST", "WSSERVER_PING_INTERVAL"):
    if os.environ.get(_name):
        globals()[_name] = float(os.environ[_name])

if os.environ.get("NOTIFICATIONS_PRESENCE"):
    NOTIFICATIONS_PRESENCE = os.environ["NOTIFICATIONS_PRESENCE"] == "1"
