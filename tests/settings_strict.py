"""
The project's settings with tight limits, for relays started by single tests: 1 s to
authenticate and to finish the handshake, 2 connections per user, 4 per IP address.
"""

from project.settings import *  # noqa: F401,F403

WSSERVER_AUTH_TIMEOUT = 1
WSSERVER_HANDSHAKE_TIMEOUT = 1
WSSERVER_MAX_CONNECTIONS_PER_USER = 2
WSSERVER_MAX_CONNECTIONS_PER_IP = 4
