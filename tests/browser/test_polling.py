"""
When WebSockets cannot get through (the relay out of reach, a proxy that refuses the upgrade),
the widget's client polls the HTTP API, says "polling", and goes back to the socket as soon as it
opens again. Here the relay is stopped before the page opens: the ticket comes (Django is up),
every socket fails to open.
"""

import pytest
from playwright.sync_api import expect

from notifications import notify

from ..factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

# Three sockets that fail to open (backoff of up to 1, 2 and 4 s between them) before polling.
POLLING_TIMEOUT = 20_000
# A poll every 5 s while things change, slower while nothing does.
POLLED_TIMEOUT = 15_000
# The socket is retried in the background with its backoff (up to 8, 16 s... by then).
BACK_TIMEOUT = 40_000


def test_with_the_relay_unreachable_the_widget_polls_then_returns_to_the_socket(start_site, relay_factory, browsers_on):
    relay = relay_factory()
    site = start_site(relay)
    user = make_user("poller")
    notify(user, "Before the page")
    relay.stop()

    widget = browsers_on(site).open(user, "/", wait_live=False)
    widget.expect_state("polling", timeout=POLLING_TIMEOUT)
    widget.expect_unread(1)
    assert len(widget.sockets) >= 3  # it tried the socket first
    widget.screenshot("polling", widget.page.locator("header"))

    notify(user, "While polling", body="Found by polling")
    toast = widget.toast("While polling")
    expect(toast).to_be_visible(timeout=POLLED_TIMEOUT)
    widget.expect_unread(2)
    widget.expect_state("polling")

    relay_factory(port=relay.port)
    widget.wait_live(timeout=BACK_TIMEOUT)
    notify(user, "Live again")
    expect(widget.toast("Live again")).to_be_visible()
    widget.expect_unread(3)
    assert widget.events() == ["While polling", "Live again"]  # the socket did not bring it twice
    widget.open()
    assert widget.item_titles() == ["Live again", "While polling", "Before the page"]
