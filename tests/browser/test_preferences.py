"""
What the user's notification preferences change in the browser: a muted event is listed and
counted but never toasted, announced or shown on the desktop, whether the relay brought it or
polling found it in the feed; with live toasts off no event is; and a change reaches the open
pages at once, through the relay's `preferences` frame. (The panel that edits them:
test_preferences_panel.py.)
"""

import re
import time

import pytest
from playwright.sync_api import expect

from notifications import notify
from notifications.preferences import update

from ..factories import make_user
from .test_polling import POLLED_TIMEOUT, POLLING_TIMEOUT
from .test_widget import FAKE_NOTIFICATIONS

pytestmark = pytest.mark.django_db(transaction=True)

FRAME_TIMEOUT = 10.0  # seconds for a preferences change to reach the page's socket
MUTED = re.compile(r"\bntf-muted\b")


def wait_for_preferences_frame(widget, count=1):
    """Until the page's socket received `count` preferences frames (the change is live there)."""
    deadline = time.monotonic() + FRAME_TIMEOUT
    while time.monotonic() < deadline:
        frames = [frame for socket in widget.sockets for frame in socket["received"] if frame["type"] == "preferences"]
        if len(frames) >= count:
            return frames[-1]["preferences"]
        widget.page.wait_for_timeout(50)
    raise AssertionError(f"No preferences frame reached the page within {FRAME_TIMEOUT} s")


def item(widget, title):
    return widget.items.filter(has_text=title)


def test_a_muted_event_is_listed_and_counted_but_never_toasted_announced_or_on_the_desktop(browsers):
    user = make_user("muter")
    bystander = make_user("bystander")
    update(user, {"muted_kinds": ["build.failed"], "muted_topics": [f"object:auth.user:{bystander.pk}"]}, partial=True)
    widget = browsers.open(user, "/", init_script=FAKE_NOTIFICATIONS)
    widget.open()
    widget.desktop.click()  # desktop notifications on: a muted event must not reach the desktop either
    expect(widget.desktop).to_have_text("Desktop notifications: on")
    widget.page.keyboard.press("Escape")
    widget.page.evaluate("window.__pretendHidden = true")  # a background tab: toast and desktop

    notify(user, "Build failed", body="main is red", kind="build.failed")
    notify(user, "About the bystander", target=bystander)
    notify(user, "Deploy done", body="v2 is live")

    expect(widget.toast("Deploy done")).to_be_visible()  # delivered in order: the muted ones came first
    assert widget.events() == ["Build failed", "About the bystander", "Deploy done"]
    widget.expect_unread(3)
    expect(widget.toasts).to_have_count(1)
    assert widget.page.evaluate("window.__desktop") == [{"title": "Deploy done", "body": "v2 is live"}]
    expect(widget.live_region).to_have_text("New notification: Deploy done. v2 is live")

    widget.page.evaluate("window.__pretendHidden = false")
    widget.open()
    assert widget.item_titles() == ["Deploy done", "About the bystander", "Build failed"]
    for title in ("Build failed", "About the bystander"):
        expect(item(widget, title)).to_have_class(MUTED)
        expect(item(widget, title)).to_contain_text("muted")
    expect(item(widget, "Deploy done")).not_to_have_class(MUTED)


def test_with_live_toasts_off_events_are_listed_without_toasts_and_turning_them_on_works_at_once(browsers):
    user = make_user("quiet")
    widget = browsers.open(user, "/")
    notify(user, "Toasted")
    expect(widget.toast("Toasted")).to_be_visible()

    update(user, {"toasts": False}, partial=True)  # as another tab or device would
    assert wait_for_preferences_frame(widget)["toasts"] is False
    notify(user, "Listed only")
    notify(user, "Listed too", body="still quiet")
    widget.expect_unread(3)
    assert widget.events() == ["Toasted", "Listed only", "Listed too"]
    expect(widget.toasts.filter(has_text="Listed")).to_have_count(0)
    expect(widget.live_region).not_to_contain_text("Listed")

    update(user, {"toasts": None}, partial=True)  # the site's default: on
    assert wait_for_preferences_frame(widget, 2)["toasts"] is True
    notify(user, "Toasted again")
    expect(widget.toast("Toasted again")).to_be_visible()
    widget.open()
    assert widget.item_titles() == ["Toasted again", "Listed too", "Listed only", "Toasted"]


def test_while_polling_a_muted_feed_entry_is_listed_without_a_toast(start_site, relay_factory, browsers_on):
    relay = relay_factory()
    site = start_site(relay)
    user = make_user("polled")
    update(user, {"muted_kinds": ["build.failed"]}, partial=True)
    relay.stop()  # no socket: the client polls the feed, whose entries say `muted`

    widget = browsers_on(site).open(user, "/", wait_live=False)
    widget.expect_state("polling", timeout=POLLING_TIMEOUT)
    notify(user, "Build failed", kind="build.failed")
    notify(user, "Deploy done")
    expect(widget.toast("Deploy done")).to_be_visible(timeout=POLLED_TIMEOUT)
    assert widget.events() == ["Build failed", "Deploy done"]  # found in this order
    expect(widget.toasts).to_have_count(1)
    widget.expect_unread(2)
    widget.open()
    expect(item(widget, "Build failed")).to_have_class(MUTED)
