"""
Where an event may send its reader.

An event's `url` becomes a link in the widget, the admin and emails. A link that leaves the
site would let anyone who can make an event (an announcement form, a view calling notify()
with user input) send readers to a phishing page under the site's name. So an event's URL is
a path on the site (`/orders/5/`) or an http(s) URL of one of its hosts (ALLOWED_HOSTS, matched
as Django matches them); anything else (another host, scheme-relative `//other.example/`, a
backslash in its place, `javascript:`, a path that is not absolute) is refused when the event is
made, with a ValueError saying what is allowed. The widget checks again before linking.
"""

import unicodedata
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import url_has_allowed_host_and_scheme


def allowed_hosts():
    """
    ALLOWED_HOSTS as Django applies it, except "*": a Host header may be anything behind a proxy
    that checks it, but a link to, or an Origin of, anywhere is not the site's.
    """
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return [host for host in settings.ALLOWED_HOSTS if host != "*"]


def on_site(url):
    """Whether a URL is a path on this site or an http(s) URL of one of its hosts."""
    if any(unicodedata.category(character)[0] == "C" for character in url):
        return False  # control characters: browsers drop some of them, making another URL
    parts = urlsplit(url)
    if not parts.netloc:
        # A path: Django's own check refuses the forms browsers would take to another host.
        return url.startswith("/") and url_has_allowed_host_and_scheme(url, allowed_hosts=None)
    if parts.scheme.lower() not in {"http", "https"}:
        return False
    domain, _port = split_domain_port(parts.netloc.rpartition("@")[2])
    return (
        "@" not in parts.netloc
        and url_has_allowed_host_and_scheme(url, allowed_hosts={parts.netloc})
        and bool(domain)
        and validate_host(domain, allowed_hosts())
    )


def checked_url(url):
    """The URL, stripped, if it may be an event's link; ValueError otherwise."""
    url = (url or "").strip()
    if url and not on_site(url):
        raise ValueError(
            f"{url!r} is not a link into this site: use a path (/orders/5/) or an http(s) URL of one of ALLOWED_HOSTS."
        )
    return url
