"""
Presence in the Django admin, end to end: users with the permission to view an object see, on
its change form, who else has it open ("alice is also viewing this", "alice is editing"), live,
and see them go; a user without the permission sees nothing of it and is never listed. The
tabs of one browser announce themselves once, through their one socket. Real Chromium, Django,
relay and Redis (tests/browser/conftest.py).

What a page's presence line said is recorded from before its scripts run (RECORD_PRESENCE), so a
name that appeared and went is still seen: proving that someone was *never* listed.
"""

import json
import re
import time
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from notifications import presence, redisconf

from . import axe
from .test_accessibility import DJANGO_CHANGE_FORM, Audit
from .test_widget import named_user

pytestmark = pytest.mark.django_db(transaction=True)

RECORD_PRESENCE = """
window.__ntfPresence = [];
new MutationObserver(() => {
  const line = document.querySelector("[data-ntf-presence]");
  if (line && line.textContent !== window.__ntfPresence.at(-1)) window.__ntfPresence.push(line.textContent);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
# A socket of the user's own, outside the widget, trying what a page of theirs could try: follow
# the object and announce itself there. What the relay answered, and the presence frames it sent.
TRY_TO_JOIN = """
async (topic) => {
  const { NotificationsClient } = await import("/static/notifications/client.js");
  const client = new NotificationsClient({ ticketUrl: "/notifications/ws-ticket/", share: false, lifecycle: false });
  const errors = [];
  const presence = [];
  client.on("error", (error) => errors.push(error.code));
  client.on("presence", (detail) => presence.push(detail));
  client.connect();
  const subscribed = await client.subscribe([topic]);
  client.announce(topic, "viewing");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  client.disconnect();
  return { subscribed, errors, presence };
}
"""


def change_form(user):
    return f"/admin/auth/user/{user.pk}/change/"


def line(widget):
    return widget.page.locator("[data-ntf-presence]")


def said(widget):
    """Every text the page's presence line showed, in order."""
    return widget.page.evaluate("window.__ntfPresence")


def entries(topic):
    """The raw entries of the topic's presence (one per socket), as the relays keep them in Redis."""
    return [json.loads(value) for value in redisconf.connection().hgetall(presence.hash_key(topic)).values()]


def test_users_who_may_view_an_object_see_each_other_come_edit_and_go_and_no_one_else(browsers):
    subject = named_user("dave")
    alice = named_user("alice", staff=True, perms=["auth.view_user"])
    bob = named_user("bob", staff=True, perms=["auth.view_user", "auth.change_user"])
    carol = named_user("carol", staff=True, perms=["auth.view_group"])  # the admin, but not users
    topic = f"object:auth.user:{subject.pk}"

    viewing = browsers.open(alice, change_form(subject), init_script=RECORD_PRESENCE)
    expect(line(viewing)).to_have_attribute("aria-live", "polite")
    editing = browsers.open(bob, change_form(subject), init_script=RECORD_PRESENCE)

    expect(line(viewing)).to_have_text("bob is also viewing this")
    expect(line(editing)).to_have_text("alice is also viewing this")  # alice's own name is not on hers
    viewing.screenshot("presence-viewing", viewing.page.locator("#header"), line(viewing))

    editing.page.fill("#id_first_name", "David")  # a change to a field: bob is editing
    expect(line(viewing)).to_have_text("bob is editing")
    expect(line(viewing).locator("p")).to_have_attribute("data-editing", "")
    expect(line(editing)).to_have_text("alice is also viewing this")
    viewing.screenshot("presence-editing", viewing.page.locator("#header"), line(viewing))
    viewing.page.emulate_media(color_scheme="dark")
    viewing.screenshot("presence-editing-dark", viewing.page.locator("#header"), line(viewing))
    assert sorted((each["user"]["username"], each["state"]) for each in presence.present(topic)) == [("alice", "viewing"), ("bob", "editing")]

    # carol may not view users: the change form refuses her, and a socket of hers can neither
    # follow the object nor announce itself there.
    outside = browsers.open(carol, "/admin/auth/group/", init_script=RECORD_PRESENCE)
    refused = outside.page.goto(change_form(subject))
    assert refused.status == 403
    outside.page.goto("/admin/auth/group/")
    outside.wait_live()
    tried = outside.page.evaluate(TRY_TO_JOIN, topic)
    assert tried["subscribed"]["topics"] == [] and [error["code"] for error in tried["subscribed"]["errors"]] == ["forbidden"]
    assert "not_subscribed" in tried["errors"]
    assert all(detail["users"] == [] for detail in tried["presence"])  # nobody, ever
    assert line(outside).count() == 0  # no change form, no line

    editing.page.close()
    expect(line(viewing)).to_be_empty()
    expect(line(viewing).locator("p")).to_have_count(0)
    assert said(viewing) == ["", "bob is also viewing this", "bob is editing", ""]  # carol never
    assert [each["user"]["username"] for each in presence.present(topic)] == ["alice"]


def test_the_tabs_of_a_browser_announce_themselves_once_through_one_socket(browsers):
    subject = named_user("dave")
    alice = named_user("alice", staff=True, perms=["auth.view_user", "auth.change_user"])
    bob = named_user("bob", staff=True, perms=["auth.view_user"])
    topic = f"object:auth.user:{subject.pk}"

    def announced(tab):
        return [frame["state"] for frame in tab.sockets[0]["sent"] if frame["type"] == "presence"]

    def alice_entries():
        return sorted((each["user"]["username"], each["state"]) for each in entries(topic) if each["user"]["id"] == alice.pk)

    first = browsers.open(alice, change_form(subject))
    second = browsers.new_page(first, change_form(subject))
    second.wait_live()
    other = browsers.open(bob, change_form(subject))

    expect(line(other)).to_have_text("alice is also viewing this")
    for tab in (first, second):
        expect(line(tab)).to_have_text("bob is also viewing this")  # never alice herself
    assert [len(tab.sockets) for tab in (first, second)] == [1, 0]
    assert announced(first) == ["viewing"]
    assert [frame["topic"] for frame in first.sockets[0]["sent"] if frame["type"] == "presence"] == [topic]
    assert alice_entries() == [("alice", "viewing")]  # one entry: one socket

    second.page.fill("#id_last_name", "Smith")  # a tab that is not the leader edits: the socket says so
    expect(line(other)).to_have_text("alice is editing")
    third = browsers.new_page(first, change_form(subject))  # one more tab, viewing: editing still wins
    expect(line(third)).to_have_text("bob is also viewing this")  # the snapshot the socket had
    assert announced(first) == ["viewing", "editing"]

    second.page.close()  # the editing tab goes: the others are only viewing
    expect(line(other)).to_have_text("alice is also viewing this")
    assert announced(first) == ["viewing", "editing", "viewing"]

    # The tab holding the socket closes: the other takes over, opens a socket and announces
    # itself again (the relay keeps no presence across sockets), right after its subscription.
    first.page.close()
    third.wait_live()
    assert len(third.sockets) == 1
    expect(line(other)).to_have_text("alice is also viewing this")
    expect(line(third)).to_have_text("bob is also viewing this")
    taken_over = [frame for frame in third.sockets[0]["sent"] if frame["type"] in ("subscribe", "presence", "resume")]
    assert [(frame["type"], frame.get("state")) for frame in taken_over] == [("subscribe", None), ("presence", "viewing"), ("resume", None)]
    wait_until(lambda: alice_entries() == [("alice", "viewing")], "alice there once, viewing")

    third.page.close()
    expect(line(other)).to_be_empty()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_change_form_passes_axe_with_the_presence_line(browsers, scheme):
    subject = named_user("dave")
    viewer = named_user("alice", staff=True, perms=["auth.view_user", "auth.change_user"])
    editor = named_user("bob", staff=True, perms=["auth.view_user", "auth.change_user"])
    widget = browsers.open(viewer, change_form(subject), init_script=axe.source())
    widget.page.emulate_media(color_scheme=scheme)
    other = browsers.open(editor, change_form(subject))
    expect(line(widget)).to_have_text("bob is also viewing this")
    audit = Audit(widget.page, exclude=DJANGO_CHANGE_FORM)
    audit("viewing")
    other.page.fill("#id_first_name", "David")
    expect(line(widget)).to_have_text("bob is editing")
    audit("editing")
    audit.assert_clean()
    assert get_user_model().objects.get(pk=subject.pk).first_name == ""  # nothing was saved


def test_the_guide_s_presence_example_with_the_admin(examples_site, browsers_on):
    """docs/examples/presence.js on a page of the site, and the admin's change form of the same object."""
    subject = named_user("dave")
    alice = named_user("alice", staff=True, perms=["auth.view_user"])
    bob = named_user("bob", staff=True, perms=["auth.view_user"])
    topic = f"object:auth.user:{subject.pk}"
    opened = browsers_on(examples_site)
    example = opened.open(alice, f"/examples/presence.html?topic={topic}", wait_live=False)
    admin = opened.open(bob, change_form(subject))

    expect(example.page.locator("#others")).to_have_text("Also here: bob (viewing)")
    expect(line(admin)).to_have_text("alice is also viewing this")
    example.page.get_by_label("Note").fill("Call him back")
    expect(line(admin)).to_have_text("alice is editing")
    admin.page.close()
    expect(example.page.locator("#others")).to_have_text("Nobody else is here.")


# Seven objects announced at once: five go at once, the relay refuses the rest for their rate
# (one a second after a burst of five), and the client announces them again a second later.
ANNOUNCE_MANY = """
async (topics) => {
  const { NotificationsClient } = await import("/static/notifications/client.js");
  const client = new NotificationsClient({ ticketUrl: "/notifications/ws-ticket/", topics, share: false, lifecycle: false });
  window.errors = [];
  client.on("error", (error) => window.errors.push(error.code));
  topics.forEach((topic) => client.announce(topic, "viewing"));
  client.connect();
  window.manyClient = client;
}
"""


def test_announcements_refused_for_their_rate_are_made_again(browsers):
    alice = named_user("alice", staff=True, perms=["auth.view_user"])
    topics = [f"object:auth.user:{named_user(f'user{number}').pk}" for number in range(7)]
    tab = browsers.open(alice, "/admin/")
    tab.page.evaluate(ANNOUNCE_MANY, topics)
    tab.page.wait_for_function("window.errors.includes('rate_limited')")
    for topic in topics:
        wait_until(lambda topic=topic: [each["user"]["username"] for each in presence.present(topic)] == ["alice"], f"alice on {topic}")


def wait_until(condition, what, timeout=5.0):
    """Poll `condition()` (a check on the servers' side) until it holds, for `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"Not within {timeout} s: {what}")
        time.sleep(0.1)


def test_the_line_s_sentences_and_announce_s_errors(browsers):
    tab = browsers.open(named_user("alice", staff=True), "/admin/")
    found = tab.page.evaluate(
        """async () => {
            const { presenceText } = await import("/static/notifications/presence-view.js");
            const { NotificationsClient } = await import("/static/notifications/client.js");
            const users = (spec) => spec.map(([username, state]) => ({ id: username, username, state }));
            const texts = [
                [], [["alice", "viewing"]], [["alice", "viewing"], ["bob", "viewing"]], [["alice", "editing"]],
                [["alice", "editing"], ["bob", "viewing"], ["carol", "viewing"], ["dave", "viewing"]],
                [["a", "viewing"], ["b", "viewing"], ["c", "viewing"], ["d", "viewing"], ["e", "viewing"]],
            ].map((spec) => presenceText(users(spec)));
            const client = new NotificationsClient({ ticketUrl: "/notifications/ws-ticket/", topics: ["object:auth.user:1"], share: false });
            const errors = [["model:auth.user", "viewing"], ["object:auth.user:2", "viewing"], ["object:auth.user:1", "away"]].map(([topic, state]) => {
                try {
                    client.announce(topic, state);
                    return null;
                } catch (error) {
                    return `${error.name}: ${error.message}`;
                }
            });
            return { texts, errors };
        }"""
    )
    assert found["texts"] == [
        "",
        "alice is also viewing this",
        "alice and bob are viewing this",
        "alice is editing",
        "alice is editing; bob, carol and dave are viewing this",
        "a, b and 3 others are viewing this",
    ]
    assert found["errors"] == [
        'TypeError: announce(): "model:auth.user" is not an object: topic this tab subscribed to; subscribe() to it first.',
        'TypeError: announce(): "object:auth.user:2" is not an object: topic this tab subscribed to; subscribe() to it first.',
        'TypeError: announce(): state must be "viewing", "editing" or null (gone), not "away".',
    ]


def test_the_demo_s_users_see_each_other_on_the_object_seeddemo_names(browsers, settings):
    """README's demo: the page seeddemo prints, opened as admin and as alice."""
    settings.DEBUG = True  # seeddemo's guard: it publishes the passwords
    output = StringIO()
    call_command("seeddemo", stdout=output)
    path = re.search(r"Presence: open (\S+) ", output.getvalue()).group(1)
    users = get_user_model().objects.in_bulk(["admin", "alice"], field_name="username")
    alice = browsers.open(users["alice"], path)
    admin = browsers.open(users["admin"], path)
    expect(line(alice)).to_have_text("admin is also viewing this")
    expect(line(admin)).to_have_text("alice is also viewing this")
    admin.page.fill("#id_first_name", "Robert")
    expect(line(alice)).to_have_text("admin is editing")


def test_a_user_who_loses_the_permission_leaves_and_sees_nobody_any_more(browsers):
    subject = named_user("dave")
    alice = named_user("alice", staff=True, perms=["auth.view_user"])
    bob = named_user("bob", staff=True, perms=["auth.view_user"])
    losing = browsers.open(alice, change_form(subject))
    staying = browsers.open(bob, change_form(subject))
    expect(line(losing)).to_have_text("bob is also viewing this")
    expect(line(staying)).to_have_text("alice is also viewing this")

    alice.user_permissions.clear()  # the relays re-check her sockets within a second
    expect(line(staying)).to_be_empty()
    expect(line(losing)).to_be_empty()
    received = [frame["type"] for frame in losing.sockets[0]["received"]]
    assert received[received.index("unsubscribed") :].count("presence_diff") == 0  # nothing of the topic after


def test_after_the_relay_restarts_the_pages_announce_themselves_again(relay_factory, start_site, browsers_on):
    """Presence is not replayed: a new socket announces again and takes the new snapshot."""
    relay = relay_factory()
    opened = browsers_on(start_site(relay))
    subject = named_user("dave")
    alice = named_user("alice", staff=True, perms=["auth.view_user"])
    bob = named_user("bob", staff=True, perms=["auth.view_user", "auth.change_user"])
    topic = f"object:auth.user:{subject.pk}"
    viewing = opened.open(alice, change_form(subject))
    editing = opened.open(bob, change_form(subject))
    editing.page.fill("#id_first_name", "David")
    expect(line(viewing)).to_have_text("bob is editing")

    relay.stop()
    expect(line(viewing)).to_be_empty()  # no socket: who is there is unknown
    relay_factory(port=relay.port)
    viewing.wait_live(timeout=40_000)
    editing.wait_live(timeout=40_000)
    expect(line(viewing)).to_have_text("bob is editing")
    expect(line(editing)).to_have_text("alice is also viewing this")
    assert sorted((each["user"]["username"], each["state"]) for each in presence.present(topic)) == [("alice", "viewing"), ("bob", "editing")]
