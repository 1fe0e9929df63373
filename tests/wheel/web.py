"""
A visitor of the site over real HTTP: urllib with a cookie jar, as a browser keeps its cookies,
and forms submitted with the CSRF token of the page that shows them. Redirects are answers to
check (a login or a saved form answers 302), not followed.
"""

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from http.cookiejar import CookieJar
from urllib.parse import urlencode

TIMEOUT = 15  # seconds per request; a login hashes a password, on a busy machine
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SESSION_COOKIE = "sessionid"  # Django's default SESSION_COOKIE_NAME: the site sets no other


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self):
        return self.body.decode()

    def json(self):
        assert self.headers.get_content_type() == "application/json", f"Not JSON ({self.status}): {self.text[:500]}"
        return json.loads(self.body)


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # urllib then raises HTTPError for the 3xx: Visitor.open returns it


class Visitor:
    def __init__(self, base_url):
        self.base_url = base_url
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),  # the site is on this machine, whatever proxy the environment names
            urllib.request.HTTPCookieProcessor(self.cookies),
            _KeepRedirects,
        )

    def open(self, path, data=None):
        try:
            with self.opener.open(self.base_url + path, data=data, timeout=TIMEOUT) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read())

    def get(self, path):
        return self.open(path)

    def submit(self, path, fields):
        """GET the page at `path`, then POST `fields` to it with the page's CSRF token."""
        page = self.get(path)
        assert page.status == 200, f"GET {path}: {page.status}"
        token = CSRF_FIELD.search(page.text)
        assert token, f"No CSRF token in the form of {path}"
        return self.open(path, urlencode({**fields, "csrfmiddlewaretoken": token[1]}).encode())

    def log_in(self, path, username, password):
        """Log in with the login form at `path`; the session cookie's value."""
        answer = self.submit(path, {"username": username, "password": password})
        assert answer.status == 302, f"{username} could not log in at {path} ({answer.status}): {answer.text[:2000]}"
        return self.cookie(SESSION_COOKIE)

    def cookie(self, name):
        values = [cookie.value for cookie in self.cookies if cookie.name == name]
        assert values, f"No {name} cookie; cookies: {[cookie.name for cookie in self.cookies]}"
        return values[0]
