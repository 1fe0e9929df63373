"""Addresses as runserver takes them: `8765`, `0.0.0.0:8765`, `[::1]:8765`, `localhost:8765`."""

import re

from django.core.management.commands.runserver import naiveip_re


def parse_address(text, default_host="127.0.0.1", default_port=None):
    """(host, port) from runserver-style text; ValueError saying which forms are expected."""
    if not text:
        if default_port is None:
            raise ValueError("An address is needed: a port number or address:port.")
        return default_host, default_port
    match = re.match(naiveip_re, str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a port number or address:port pair.")
    host, _ipv4, ipv6, _fqdn, port = match.groups()
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{port!r} is not a valid port number.")
    if host:
        host = host[1:-1] if ipv6 else host
    return host or default_host, int(port)
