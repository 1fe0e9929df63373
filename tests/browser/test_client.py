"""
The headless client (notifications/static/notifications/client.js) as docs/client.md shows it:
the plain JavaScript example and the React hook, each run as it is in a page of the site's
origin (served by the test), against the real servers.

React comes from npm (tests/browser/package.json, installed by .ci/run with `npm ci`), served
by the test with an import map: no CDN, no build step.
"""

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from notifications import notify

from .. import ci
from ..factories import make_user
from ..relay import BASE_DIR

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = BASE_DIR / "docs" / "examples"
GUIDE = BASE_DIR / "docs" / "client.md"
NODE_MODULES = BASE_DIR / "tests" / "browser" / "node_modules"

PLAIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The plain client</title></head>
<body><p>State: <span id="state">disconnected</span> · Unread: <span id="unread">0</span></p>
<ul id="events"></ul>
<script type="module" src="/examples/plain.js"></script></body></html>"""

REACT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The React hook</title>
<script src="/examples/vendor/react.js"></script>
<script src="/examples/vendor/react-dom.js"></script>
<script type="importmap">{"imports": {"react": "/examples/vendor/react.mjs", "react-dom/client": "/examples/vendor/react-dom-client.mjs"}}</script>
</head><body><div id="app"></div>
<script type="module" src="/examples/react-bell.js"></script></body></html>"""

# React 18's UMD builds define window.React and window.ReactDOM; these modules re-export them
# under the names the examples import.
VENDOR = {
    "vendor/react.js": NODE_MODULES / "react" / "umd" / "react.production.min.js",
    "vendor/react-dom.js": NODE_MODULES / "react-dom" / "umd" / "react-dom.production.min.js",
}
SHIMS = {
    "vendor/react.mjs": "const React = window.React;\nexport default React;\n"
    "export const { createElement, useEffect, useState, useRef, useSyncExternalStore } = React;\n",
    "vendor/react-dom-client.mjs": "export const { createRoot, hydrateRoot } = window.ReactDOM;\n",
}


def serve_examples(context, pages):
    """Answer /examples/... on the site's origin: `pages`, docs/examples/*.js and React."""

    def handle(route):
        name = urlparse(route.request.url).path.removeprefix("/examples/")
        if name in pages:
            route.fulfill(body=pages[name], content_type="text/html")
        elif name in SHIMS:
            route.fulfill(body=SHIMS[name], content_type="text/javascript")
        elif name in VENDOR:
            route.fulfill(path=VENDOR[name], content_type="text/javascript")
        elif "/" not in name and (EXAMPLES / name).is_file():
            route.fulfill(path=EXAMPLES / name, content_type="text/javascript")
        else:
            route.fulfill(status=404, body="not found")

    context.route("**/examples/**", handle)


def open_example(browsers, user, page_name, html):
    """A tab of `user` on the site (its widget live), then on the example's page."""
    tab = browsers.open(user, "/")
    serve_examples(tab.page.context, {page_name: html})
    tab.page.goto(f"/examples/{page_name}")
    return tab


def test_the_guide_shows_the_examples_that_the_tests_run():
    guide = GUIDE.read_text()
    for name in ("plain.js", "use-notifications.js", "react-bell.js"):
        assert (EXAMPLES / name).read_text().strip() in guide, f"docs/client.md does not show docs/examples/{name} as it is"


def test_the_plain_javascript_example(browsers):
    user = make_user("plain", staff=True, perms=["auth.view_user"])
    notify(user, "Already there")
    tab = open_example(browsers, user, "plain.html", PLAIN_PAGE)
    page = tab.page
    expect(page.locator("#state")).to_have_text("connected")
    expect(page.locator("#unread")).to_have_text("1")

    notify(user, "Hello from the test")
    expect(page.locator("#events li").first).to_have_text("Hello from the test (inbox)")
    expect(page.locator("#unread")).to_have_text("2")

    # Its subscription went out with a ref; subscribe() and unsubscribe() answer with theirs.
    socket = tab.sockets[-1]
    subscribe = next(frame for frame in socket["sent"] if frame["type"] == "subscribe")
    assert subscribe["topics"] == ["model:*"] and subscribe["ref"]
    topic = f"object:auth.user:{user.pk}"
    answers = page.evaluate(
        """async (topic) => {
            const client = window.notifications;
            const subscribed = await client.subscribe([topic, "model:no.such"]);
            const unsubscribed = await client.unsubscribe(topic);
            let refused;
            try {
                new client.constructor({ topics: ["inbox"] });
            } catch (error) {
                refused = `${error.name}: ${error.message}`;
            }
            let badTopics;
            try {
                await client.subscribe([""]);
            } catch (error) {
                badTopics = error.message;
            }
            return { subscribed, unsubscribed, refused, badTopics, state: client.state, leader: client.isLeader };
        }""",
        topic,
    )
    assert answers["subscribed"]["topics"] == [topic]
    assert [error["code"] for error in answers["subscribed"]["errors"]] == ["unknown_topic"]
    assert answers["unsubscribed"] == {"topics": [topic], "errors": []}
    assert answers["refused"].startswith("TypeError: NotificationsClient: give ticketUrl")
    assert "topics must be an array of non-empty strings" in answers["badTopics"]
    assert answers["state"] == "connected" and answers["leader"] is True
    sent = [frame for frame in socket["sent"] if frame["type"] in {"subscribe", "unsubscribe"}]
    assert [(frame["type"], frame["topics"]) for frame in sent[1:]] == [
        ("subscribe", [topic, "model:no.such"]),
        ("unsubscribe", [topic]),
    ]
    assert len({frame["ref"] for frame in sent}) == 3


def react_installed():
    missing = [str(path) for path in VENDOR.values() if not path.is_file()]
    if not missing:
        return
    reason = f"React is not installed for the browser tests ({missing[0]} is missing; npm ci --prefix tests/browser)"
    if ci.in_ci():
        pytest.fail(f"{reason}. The React example's test must run in CI: .ci/run installs it.")
    pytest.skip(reason)


def test_the_react_hook_example(browsers):
    react_installed()
    user = make_user("reactive")
    notify(user, "Already there")
    tab = open_example(browsers, user, "react.html", REACT_PAGE)
    page = tab.page
    expect(page.locator("#state")).to_have_text("connected")
    expect(page.locator("#unread")).to_have_text("1")

    notify(user, "Rendered by React")
    expect(page.locator("#events li")).to_have_text(["Rendered by React"])
    expect(page.locator("#unread")).to_have_text("2")
    notify(user, "And another")
    expect(page.locator("#events li")).to_have_text(["And another", "Rendered by React"])
    expect(page.locator("#unread")).to_have_text("3")
