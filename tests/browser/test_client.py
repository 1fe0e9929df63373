"""
The headless client (notifications/static/notifications/client.js) as docs/client.md shows it:
the plain JavaScript example and the React hook, each run as it is in a page of the site
(tests/browser/examples_urls.py), against the real servers.

React comes from npm (tests/browser/package.json, installed by .ci/run with `npm ci`), served
by the site under test with an import map: no CDN, no build step.
"""

import pytest
from playwright.sync_api import expect

from notifications import notify

from .. import ci
from ..factories import make_user
from .examples_urls import EXAMPLES, REACT, REACT_DOM

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = EXAMPLES.parent / "client.md"


def open_example(browsers_on, site, user, name):
    """
    A tab of `user` on the example page `name`, once it is connected and counts the one unread
    notification `user` had before it opened.
    """
    notify(user, "Already there")
    tab = browsers_on(site).open(user, f"/examples/{name}.html", wait_live=False)
    expect(tab.page.locator("#state")).to_have_text("connected")
    expect(tab.page.locator("#unread")).to_have_text("1")
    return tab


def test_the_guide_shows_the_examples_that_the_tests_run():
    guide = GUIDE.read_text()
    for name in ("plain.js", "presence.js", "use-notifications.js", "react-bell.js"):
        assert (EXAMPLES / name).read_text().strip() in guide, f"docs/client.md does not show docs/examples/{name} as it is"


def test_the_plain_javascript_example(examples_site, browsers_on):
    user = make_user("plain", staff=True, perms=["auth.view_user"])
    tab = open_example(browsers_on, examples_site, user, "plain")
    page = tab.page

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
    for path in (REACT, REACT_DOM):
        if not path.is_file():
            ci.unavailable(f"No React at {path}", "npm", "The React example's test", install="npm ci --prefix tests/browser")


def test_the_react_hook_example(examples_site, browsers_on):
    react_installed()
    user = make_user("reactive")
    tab = open_example(browsers_on, examples_site, user, "react")
    page = tab.page

    notify(user, "Rendered by React")
    expect(page.locator("#events li")).to_have_text(["Rendered by React"])
    expect(page.locator("#unread")).to_have_text("2")
    notify(user, "And another")
    expect(page.locator("#events li")).to_have_text(["And another", "Rendered by React"])
    expect(page.locator("#unread")).to_have_text("3")
