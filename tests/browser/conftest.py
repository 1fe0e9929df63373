"""
Browser tests: Playwright driving Debian's Chromium against real servers, the way a visitor
meets the widget. Each test gets its own Django (`manage.py runserver`, a subprocess) talking to
the session's relay, Redis and test database; each user gets a browser context of their own
(their own cookies), logged in with a session made by Django's test Client.

Why a Django process per test: these tests use transactional database access, and the flush
after each test recreates content types with new ids, which a longer-lived process would still
hold in its ContentType cache. Starting runserver costs about half a second.

Without Chromium the tests are skipped, except in CI (CI=true), where they must run.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import sync_playwright

from .. import ci
from .. import relay as servers
from ..factories import login
from .widget import WidgetPage

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1180, "height": 760}

# Recorded before any page script runs: the title of every event the widget accepts, in order,
# so a test can prove what did *not* arrive (see tests/wsclient.py).
RECORD_EVENTS = """
window.__ntfEvents = [];
document.addEventListener("notifications:event", (e) => window.__ntfEvents.push(e.detail.event.title));
"""


def unavailable(reason):
    ci.unavailable(reason, "chromium", "The browser tests")


@pytest.fixture(scope="package")
def browser():
    if not Path(CHROMIUM).exists():
        unavailable(f"No Chromium at {CHROMIUM}")
    # Playwright's sync API keeps an event loop running in this thread, so Django's check that
    # no ORM call runs on an event loop would refuse the tests' own database work. The servers
    # are other processes and keep the check (tests/relay.py drops this variable for them).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000)
        yield launched
        launched.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def start_site(transactional_db, relay_log_dir, request):
    """start_site(relay) → a runserver whose pages connect to `relay`; stopped after the test."""
    started = []

    def start(relay, **kwargs):
        started.append(servers.start_django(relay_log_dir, relay, **kwargs))
        return started[-1]

    yield start
    report = getattr(request.node, "report_call", None)
    for server in started:
        server.stop()
        if report is not None and report.failed:
            print(f"--- runserver on port {server.port} logged:\n{server.output()}")


@pytest.fixture
def examples_site(start_site, relay):
    """Django with /examples/ (tests/browser/examples_urls.py), connected to the session's relay."""
    return start_site(relay, settings_module="tests.settings_examples")


@pytest.fixture
def site(start_site, relay):
    """Django for this test, connected to the session's relay."""
    return start_site(relay)


class Browsers:
    """Browser contexts (one per user, cookies of their own) on one site; page errors fail the test."""

    def __init__(self, browser, base_url):
        self.browser = browser
        self.base_url = base_url
        self.contexts = []
        self.errors = []
        self.dialogs = []

    def open(self, user, path="/", *, init_script=None, permissions=None, wait_live=True, clock=False, setup=None):
        """
        A new context logged in as `user`, with a page on `path`; a WidgetPage. With `clock`, the
        page's timers run on Playwright's clock (page.clock.fast_forward); `setup(context)` runs
        before the page opens (routes).
        """
        session = login(user)
        context = self.browser.new_context(base_url=self.base_url, viewport=VIEWPORT, permissions=permissions or [])
        context.set_default_timeout(10_000)
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session.cookie, "url": self.base_url}])
        context.add_init_script(script=RECORD_EVENTS)
        if init_script:
            context.add_init_script(script=init_script)
        if setup:
            setup(context)
        self.contexts.append(context)
        page = context.new_page()
        self.watch(page)
        widget = WidgetPage(page)
        if clock:
            page.clock.install()
        page.goto(path)
        if wait_live:
            widget.wait_live()
        return widget

    def new_page(self, widget, path):
        """Another tab of `widget`'s context (same user, same cookies)."""
        page = widget.page.context.new_page()
        self.watch(page)
        other = WidgetPage(page)
        page.goto(path)
        return other

    def watch(self, page):
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._console(page, message))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def _console(self, page, message):
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"{page.url}: {message.text}")

    def close(self):
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def browsers(browser, site):
    opened = Browsers(browser, site.url)
    yield opened
    opened.close()
    assert not opened.errors, f"Errors in the page: {opened.errors}"
    assert not opened.dialogs, f"The page opened dialogs: {opened.dialogs}"


@pytest.fixture
def browsers_on(browser):
    """browsers_on(site) → Browsers for a site started by the test (start_site)."""
    opened = []

    def make(server):
        opened.append(Browsers(browser, server.url))
        return opened[-1]

    yield make
    for each in opened:
        each.close()
    for each in opened:
        assert not each.errors, f"Errors in the page: {each.errors}"
        assert not each.dialogs, f"The page opened dialogs: {each.dialogs}"
