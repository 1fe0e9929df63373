"""The project's settings with a 1 s ticket-mode auth timeout, for a relay started by one test."""

from project.settings import *  # noqa: F401,F403

WSSERVER_AUTH_TIMEOUT = 1
