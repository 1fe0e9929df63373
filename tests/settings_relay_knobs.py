"""
The project's settings with the relay's timings and limits taken from the environment, so a test
can make a relay re-check every second, replay less or ping often: WSSERVER_RECHECK_INTERVAL,
WSSERVER_REPLAY_RATE, WSSERVER_REPLAY_BURST, WSSERVER_PING_INTERVAL (numbers; unset: the defaults).
"""

import os

from project.settings import *  # noqa: F401,F403

for _name in ("WSSERVER_RECHECK_INTERVAL", "WSSERVER_REPLAY_RATE", "WSSERVER_REPLAY_BURST", "WSSERVER_PING_INTERVAL"):
    if os.environ.get(_name):
        globals()[_name] = float(os.environ[_name])
