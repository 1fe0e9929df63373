"""
The widget through a database outage, in a real browser: while the database is down and its
socket is gone, it says "reconnecting" (not "offline": nothing is wrong with the user's session)
and keeps trying with its backoff; once the database is back it is live again by itself.

Django and the relay run on a throwaway PostgreSQL (tests/pg_server.py) that the test stops and
starts; the user and their session are made there.
"""

import time

import pytest

from .. import pg_server
from . import conftest as browser_fixtures

pytestmark = pytest.mark.django_db(transaction=True)

# The widget's backoff doubles up to 30 s; the outage below lasts a few of its attempts, so the
# attempt after it comes within seconds, or one more while the relay starts. Bounded generously:
# the backoff's cap, and a busy machine.
RECOVERY_TIMEOUT = 40_000
RETRIES_TIMEOUT = 20.0  # seconds for the widget to ask for a ticket twice while the database is down

# Every state the widget shows, in order, recorded from before its script runs.
RECORD_STATES = """
window.__ntfStates = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.target.matches("[data-ntf-widget]")) window.__ntfStates.push(change.target.dataset.state);
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
"""


@pytest.fixture
def browsers_on_postgres(servers_on_postgres, browsers_on, monkeypatch):
    """browsers_on, for users of the throwaway PostgreSQL: open() takes a pg_server.Login."""
    monkeypatch.setattr(browser_fixtures, "login", lambda session: session)  # made there already
    return browsers_on


def ticket_statuses(page):
    """The statuses of the page's ticket requests, in order, as they are answered."""
    statuses = []
    page.on("response", lambda response: "/ws-ticket/" in response.url and statuses.append(response.status))
    return statuses


def wait_for_refusals(page, statuses, count):
    """Wait (bounded, letting the page's events through) until `count` ticket requests got a 503."""
    deadline = time.monotonic() + RETRIES_TIMEOUT
    while statuses.count(503) < count:
        assert time.monotonic() < deadline, f"Ticket answers while the database is down: {statuses}"
        page.wait_for_timeout(100)


def test_the_widget_reconnects_by_itself_after_the_database_comes_back(postgres, relay_factory, start_site, browsers_on_postgres):
    relay = relay_factory()
    site = start_site(relay)
    session = pg_server.login(postgres, "outage")
    widget = browsers_on_postgres(site).open(session, "/", init_script=RECORD_STATES)
    tickets = ticket_statuses(widget.page)

    with postgres.down():
        relay.stop()  # the socket drops: the widget must reconnect, through the outage
        widget.expect_state("reconnecting")
        wait_for_refusals(widget.page, tickets, 2)  # it keeps trying; each ticket is a 503
        widget.expect_state("reconnecting")
        widget.screenshot("outage-reconnecting", widget.root)
    relay_factory(port=relay.port)  # where the page expects it; one started during an outage: tests/test_outages.py

    widget.wait_live(timeout=RECOVERY_TIMEOUT)
    states = widget.page.evaluate("window.__ntfStates")
    assert "offline" not in states, states
    assert tickets[-1] == 200, tickets
