"""
One socket per browser: the tabs of one site in one browser context share the connection of
the tab that holds the Web Lock (notifications/static/notifications/tabs.js), and when that tab
closes another takes over and resumes from the cursor it kept, losing and repeating nothing.
Each event is toasted by one tab only.

What a tab accepted is recorded from before its scripts run (conftest.RECORD_EVENTS); toasts are
recorded the same way, so a toast that came and went is still counted. Proving that nothing is
repeated: the last event of each phase is waited for, and any repeat of an earlier one would have
come before it.
"""

import json
import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from notifications import notify
from notifications.events import create_object_events
from notifications.models import Event, Kind

from ..factories import login, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TABS = 4
EVENT_TIMEOUT = 10_000

RECORD_TOASTS = """
window.__ntfToasts = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    for (const node of change.addedNodes) {
      if (node.nodeType === 1 && node.matches("[data-ntf-toast]")) {
        window.__ntfToasts.push(node.querySelector(".ntf-toast-title").textContent);
      }
    }
  }
}).observe(document, { subtree: true, childList: true });
"""


# A tab slow to answer (busy, or throttled in the background): once window.__ntfSlow is set, what
# it posts to the other tabs about itself goes out two seconds late.
SLOW_TAB = """
const post = BroadcastChannel.prototype.postMessage;
BroadcastChannel.prototype.postMessage = function (message) {
  if (window.__ntfSlow && message && message.kind === "tab") setTimeout(() => post.call(this, message), 2000);
  else post.call(this, message);
};
"""


def wait_for_events(tab, count):
    try:
        tab.page.wait_for_function("(count) => window.__ntfEvents.length >= count", arg=count, timeout=EVENT_TIMEOUT)
    except PlaywrightError:
        state = tab.root.get_attribute("data-state")
        frames = [(socket["sent"], [frame.get("event", {}).get("title", frame["type"]) for frame in socket["received"]]) for socket in tab.sockets]
        raise AssertionError(f"{count} events expected, the tab ({state}) has {tab.events()}; its sockets: {frames}") from None


def toasts(tab):
    return tab.page.evaluate("window.__ntfToasts")


def sent_types(socket):
    return [frame["type"] for frame in socket["sent"]]


def test_four_tabs_share_one_socket_and_a_takeover_loses_and_repeats_nothing(browsers):
    user = make_user("tabs")
    notify(user, "Before the tabs")
    first = browsers.open(user, "/", init_script=RECORD_TOASTS)
    tabs = [first] + [browsers.new_page(first, "/") for _ in range(TABS - 1)]
    for tab in tabs:
        tab.wait_live()
        tab.expect_unread(1)
    # The first tab took the lock; the others follow it over the BroadcastChannel.
    assert [len(tab.sockets) for tab in tabs] == [1, 0, 0, 0]
    leader = first

    phase_one = [f"Phase one {number}" for number in range(3)]
    for title in phase_one:
        notify(user, title)
    for tab in tabs:
        wait_for_events(tab, len(phase_one))
        assert tab.events() == phase_one
        tab.expect_unread(1 + len(phase_one))
    # One toast per event for the whole browser: every tab looks focused to Playwright, and the
    # leader's own tab is preferred among focused ones.
    assert sorted(title for tab in tabs for title in toasts(tab)) == sorted(phase_one)

    # The leader's tab closes in the middle of a stream of events.
    stream = [f"Stream {number}" for number in range(12)]
    for number, title in enumerate(stream):
        notify(user, title)
        if number == 4:
            leader.page.close()
    survivors = tabs[1:]
    for tab in survivors:
        wait_for_events(tab, len(phase_one) + len(stream))
        assert tab.events() == phase_one + stream  # nothing lost, nothing repeated, in order
        tab.wait_live()
        tab.expect_unread(1 + len(phase_one) + len(stream))
    # Exactly one of them opened a socket, and it resumed from the cursor the tabs shared.
    opened = [socket for tab in survivors for socket in tab.sockets]
    assert len(opened) == 1, [tab.sockets for tab in survivors]
    assert "resume" in sent_types(opened[0])
    last_seen = [frame for frame in leader.sockets[0]["received"] if frame["type"] == "event"]
    resumed_from = next(frame["cursor"] for frame in opened[0]["sent"] if frame["type"] == "resume")
    assert resumed_from in {frame["cursor"] for frame in last_seen}

    shown = {id(tab): len(toasts(tab)) for tab in survivors}
    phase_three = [f"Phase three {number}" for number in range(3)]
    for title in phase_three:
        notify(user, title)
    for tab in survivors:
        wait_for_events(tab, len(phase_one) + len(stream) + len(phase_three))
        assert tab.events() == phase_one + stream + phase_three
        tab.expect_unread(1 + len(phase_one) + len(stream) + len(phase_three))
    toasted = sorted(title for tab in survivors for title in toasts(tab)[shown[id(tab)] :])
    assert toasted == sorted(phase_three)
    assert len([socket for tab in survivors for socket in tab.sockets]) == 1

    # A tab opened now joins the same socket.
    late = browsers.new_page(survivors[0], "/")
    late.wait_live()
    late.expect_unread(1 + len(phase_one) + len(stream) + len(phase_three))
    assert late.sockets == []


def test_a_read_frame_reaches_every_tab_and_sets_badges_and_lists(browsers):
    """
    The client's side of the `read` frame (docs/protocol.md): the frames are sent to the page
    through the browser's real socket to the relay (Playwright routes it and adds them), in the
    agreed shape; the leader's tab relays them to the other tab.
    """
    user = make_user("reader")
    ids = [notify(user, f"Note {number}").pk for number in range(5)]
    routed = []

    def route(socket):
        socket.connect_to_server()  # everything passes through both ways
        routed.append(socket)

    first = browsers.open(user, "/", setup=lambda context: context.route_web_socket(re.compile(r"/ws/$"), route))
    second = browsers.new_page(first, "/")
    tabs = (first, second)
    for tab in tabs:
        tab.wait_live()
        tab.expect_unread(5)
    assert len(routed) == 1

    def read(ids, up_to, unread_count, latest):
        frame = {"type": "read", "topic": "inbox", "ids": ids, "up_to": up_to, "unread_count": unread_count, "latest": latest}
        routed[-1].send(json.dumps(frame))

    read([ids[0], ids[1]], None, 3, ids[-1])
    for tab in tabs:
        tab.expect_unread(3)
        expect(tab.root.locator(".ntf-unread")).to_have_count(3)
        expect(tab.root.locator(f'[data-event-id="{ids[0]}"]')).not_to_have_class(re.compile(r"\bntf-unread\b"))

    read(None, ids[-1], 0, ids[-1])  # all read
    for tab in tabs:
        tab.expect_unread(0)
        expect(tab.root.locator(".ntf-unread")).to_have_count(0)

    # An event the count already covered (committed before the count was taken, delivered after
    # the frame) is listed but not counted again; the next one is.
    upcoming = ids[-1] + 1
    read(None, ids[-1], 1, upcoming)
    for tab in tabs:
        tab.expect_unread(1)
    assert notify(user, "Counted already").pk == upcoming
    notify(user, "Counted now")
    for tab in tabs:
        wait_for_events(tab, 2)
        assert tab.events() == ["Counted already", "Counted now"]
        tab.expect_unread(2)


# Marking read anywhere reaches every tab and device of the user within a second; bounded a little
# more generously here, for a busy machine.
READ_TIMEOUT = 2_000


def test_marking_read_in_one_tab_or_over_http_updates_every_tab_and_browser(browsers):
    """The server's read frames end to end: two tabs of one browser, a second browser, the HTTP API."""
    user = make_user("everywhere")
    ids = [notify(user, f"Item {number}").pk for number in range(4)]
    laptop = browsers.open(user, "/")
    laptop_tab = browsers.new_page(laptop, "/")
    phone = browsers.open(user, "/")  # another browser context: its own socket
    everywhere = (laptop, laptop_tab, phone)
    for tab in everywhere:
        tab.wait_live()
        tab.expect_unread(4)

    laptop.open()
    laptop.root.locator(f'[data-event-id="{ids[0]}"]').get_by_role("button", name="Mark as read").click()
    for tab in everywhere:
        tab.expect_unread(3, timeout=READ_TIMEOUT)
        expect(tab.root.locator(f'[data-event-id="{ids[0]}"]')).not_to_have_class(re.compile(r"\bntf-unread\b"))
        expect(tab.root.locator(".ntf-unread")).to_have_count(3)

    response = login(user).client.post("/notifications/api/read-all/")
    assert response.status_code == 200, response.content
    for tab in everywhere:
        tab.expect_unread(0, timeout=READ_TIMEOUT)
        expect(tab.root.locator(".ntf-unread")).to_have_count(0)

    notify(user, "After reading")
    for tab in everywhere:
        tab.expect_unread(1)


def test_a_takeover_resumes_the_topics_of_every_tab_not_only_the_new_leaders(examples_site, browsers_on):
    """
    Only a follower follows the change form's topics (the other tabs run the headless client on
    the inbox alone): the next leader subscribes to them before it resumes, so the replay covers
    the events on them that came while no tab held the socket. It knows them already, and does
    not depend on the follower answering it in time.
    """
    watcher = make_user("watcher", staff=True, perms=["auth.view_user"])
    bob = make_user("bob")
    topic = f"object:auth.user:{bob.pk}"
    browsers = browsers_on(examples_site)
    leader = browsers.open(watcher, "/examples/plain.html", init_script=SLOW_TAB, wait_live=False)
    heir = browsers.new_page(leader, "/examples/plain.html")  # queued first for the lock: the next leader
    for tab in (leader, heir):
        expect(tab.page.locator("#state")).to_have_text("connected")
        tab.page.evaluate("window.notifications.unsubscribe('model:*')")
    viewing = browsers.new_page(leader, f"/admin/auth/user/{bob.pk}/change/")
    viewing.wait_live()
    assert [len(tab.sockets) for tab in (leader, heir, viewing)] == [1, 0, 0]
    for _ in range(100):  # the viewing tab's topic is followed on the leader's socket
        if any(frame["type"] == "subscribed" and topic in frame["topics"] for frame in leader.sockets[0]["received"]):
            break
        leader.page.wait_for_timeout(100)
    else:
        raise AssertionError(f"{topic} never subscribed: {leader.sockets[0]['sent']}")

    def changed(title):
        create_object_events([Event(kind=Kind.MODEL_UPDATED, title=title, target_type="auth.user", target_id=str(bob.pk), target_repr=bob.username)])

    viewing.page.evaluate("window.__ntfSlow = true")
    stream = [f"Change {number}" for number in range(12)]
    for number, title in enumerate(stream):
        changed(title)
        if number == 2:
            leader.page.close()
    wait_for_events(viewing, len(stream))
    assert viewing.events() == stream  # nothing lost, nothing repeated, in order
    assert heir.sockets and not viewing.sockets
    sent = heir.sockets[0]["sent"]
    resumed = sent_types(heir.sockets[0]).index("resume")
    assert any(frame["type"] == "subscribe" and topic in frame["topics"] for frame in sent[:resumed]), sent
