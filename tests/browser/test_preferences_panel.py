"""
The preferences panel against the real API (GET and PATCH /notifications/api/preferences/):
it opens from the dropdown, loads, saves what the user changed and a reload shows it, shows a
400's errors next to their fields, works from the keyboard alone, passes axe light and dark,
follows a change made in another tab or on another device, and each notification's mute menu
mutes its kind or its object. "Notify me on this device" shows only where the site has a VAPID
key, and says why when the browser refuses the permission.
"""

import re

import pytest
from playwright.sync_api import expect

from notifications import notify
from notifications.models import Preferences
from notifications.preferences import choices_for, update

from ..factories import make_user
from . import axe
from .test_accessibility import Audit, assert_focus_visible, tab_to
from .test_widget import named_user

pytestmark = pytest.mark.django_db(transaction=True)

MUTED = re.compile(r"\bntf-muted\b")
# A VAPID public key's shape (an uncompressed P-256 point, base64url): the panel only shows the
# device control for it; nothing is subscribed with it here.
VAPID_PUBLIC_KEY = "BNbxGYNMhEIi9zrneh7mqV4oUanjLUK3m-mYZBc62frMKrEoMk88r3Lk596T0ck9xlT-dZf6rUs8bl8CkHcHRYo"


class Panel:
    """The preferences panel's controls, found as a user finds them: by their labels."""

    def __init__(self, widget):
        self.element = widget.open_preferences()
        self.toasts = self.element.get_by_label("Live toasts on this site")
        self.push = self.element.get_by_label("Push notifications to my devices")
        self.digest = self.element.get_by_label("Email digest")
        self.language = self.element.get_by_label("Language")
        self.save = self.element.get_by_role("button", name="Save")
        self.back = self.element.get_by_role("button", name="Back to notifications")
        self.status = self.element.locator("[data-ntf-prefs-status]")
        self.alert = self.element.get_by_role("alert")

    def muted(self, legend):
        return self.element.locator("fieldset", has=self.element.page.locator(f"legend:text-is('{legend}')")).locator(".ntf-mute-name")

    def remove(self, name):
        return self.element.get_by_role("button", name=f"Remove {name}", exact=True)

    def saved(self):
        self.save.click()
        expect(self.status).to_have_text("Preferences saved.")


def item(widget, title):
    return widget.items.filter(has_text=title)


def force_unknown_language(panel):
    """A language the server does not offer, as a page older than the site's settings would send."""
    panel.language.evaluate("(select) => { select.options[1].value = 'xx-nowhere'; select.selectedIndex = 1; }")


def test_the_panel_loads_saves_over_http_and_a_reload_shows_the_saved_values(browsers):
    user = make_user("chooser")
    update(user, {"muted_kinds": ["build.failed", "model.updated"], "muted_topics": ["model:auth.group"]}, partial=True)
    widget = browsers.open(user, "/")
    panel = Panel(widget)
    expect(widget.panel).to_have_attribute("aria-label", "Notification preferences")
    expect(widget.items.first).to_be_hidden()
    expect(panel.toasts).to_be_checked()
    expect(panel.push).to_be_checked()
    expect(panel.digest).to_have_value("")  # the site's default
    expect(panel.digest.locator("option").first).to_have_text("Site default (Off)")
    expect(panel.language).to_have_value("")
    expect(panel.muted("Muted kinds")).to_have_text(["build.failed", "model.updated"])
    expect(panel.muted("Muted topics")).to_have_text(["model:auth.group"])

    panel.toasts.uncheck()
    panel.digest.select_option("weekly")
    panel.language.select_option("fr")
    panel.remove("build.failed").click()
    expect(panel.remove("model.updated")).to_be_focused()  # the focus goes on to the next entry
    panel.saved()

    stored = Preferences.objects.get(user_id=user.pk)
    assert stored.push is None  # untouched: still the site's default
    choices = choices_for(user)
    assert (choices.toasts, choices.digest, choices.language) == (False, "weekly", "fr")
    assert choices.muted_kinds == ("model.updated",) and choices.muted_topics == ("model:auth.group",)

    widget.page.reload()
    widget.wait_live()
    panel = Panel(widget)
    expect(panel.toasts).not_to_be_checked()
    expect(panel.digest).to_have_value("weekly")
    expect(panel.language).to_have_value("fr")
    expect(panel.muted("Muted kinds")).to_have_text(["model.updated"])
    notify(user, "Quiet now")  # toasts off applies from the page's first moment
    widget.expect_unread(1)
    expect(widget.toasts).to_have_count(0)


def test_a_400_shows_each_error_next_to_its_field_announced_and_keeps_the_edits(browsers):
    user = make_user("mistaken")
    widget = browsers.open(user, "/")
    panel = Panel(widget)
    panel.digest.select_option("hourly")
    force_unknown_language(panel)
    panel.save.click()

    expect(panel.language).to_have_attribute("aria-invalid", "true")
    error = widget.page.locator(f"[id='{panel.language.get_attribute('aria-describedby')}']")
    expect(error).to_contain_text("Expected one of the site's languages")
    expect(error).to_be_visible()
    assert error.evaluate("(node) => node.parentElement.contains(document.querySelector('select[name=language]'))")
    expect(panel.alert).to_contain_text("Not saved. Language: Expected one of the site's languages")
    expect(panel.language).to_be_focused()
    expect(panel.digest).to_have_value("hourly")  # nothing the user chose is lost
    expect(panel.digest).not_to_have_attribute("aria-invalid", "true")
    assert choices_for(user).digest == "off"  # and nothing was stored

    panel.language.select_option("de")
    panel.saved()
    expect(panel.language).not_to_have_attribute("aria-invalid", "true")
    expect(error).to_be_hidden()
    expect(panel.alert).to_have_text("")
    choices = choices_for(user)
    assert (choices.digest, choices.language) == ("hourly", "de")


def test_the_panel_and_the_mute_menu_work_from_the_keyboard_alone(browsers):
    user = make_user("keyboard")
    notify(user, "Build failed", kind="build.failed")
    widget = browsers.open(user, "/")
    page = widget.page

    tab_to(page, widget.bell)
    page.keyboard.press("Enter")
    expect(widget.panel).to_be_visible()
    tab_to(page, widget.preferences_button)
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(widget.preferences).to_be_visible()
    expect(widget.preferences.get_by_role("button", name="Back to notifications")).to_be_focused()
    expect(widget.preferences.locator("select[name=digest] option")).not_to_have_count(0)

    page.keyboard.press("Tab")
    toasts = widget.preferences.get_by_label("Live toasts on this site")
    expect(toasts).to_be_focused()
    assert_focus_visible(page)
    page.keyboard.press("Space")
    expect(toasts).not_to_be_checked()
    save = widget.preferences.get_by_role("button", name="Save")
    for _ in range(20):  # every control on the way shows the focus, and the focus stays in the panel
        page.keyboard.press("Tab")
        assert widget.preferences.evaluate("(form) => form.contains(document.activeElement)")
        assert_focus_visible(page)
        if save.evaluate("(node) => node === document.activeElement"):
            break
    expect(save).to_be_focused()
    page.keyboard.press("Enter")
    expect(widget.preferences.locator("[data-ntf-prefs-status]")).to_have_text("Preferences saved.")
    assert choices_for(user).toasts is False

    page.keyboard.press("Escape")  # back to the list, on the button that opened the panel
    expect(widget.preferences).to_be_hidden()
    expect(widget.preferences_button).to_be_focused()
    page.keyboard.press("Escape")  # and out of the dropdown, back on the bell
    expect(widget.panel).to_be_hidden()
    expect(widget.bell).to_be_focused()

    page.keyboard.press("Enter")
    row = item(widget, "Build failed")
    expect(row.locator("[data-ntf-item]")).to_be_focused()
    page.keyboard.press("Tab")
    toggle = row.get_by_role("button", name="Mute options: Build failed")
    expect(toggle).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    choice = row.get_by_role("button", name="Mute all “build.failed” notifications")
    expect(choice).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")  # closes the choices, not the dropdown
    expect(choice).to_be_hidden()
    expect(toggle).to_be_focused()
    expect(widget.panel).to_be_visible()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(row).to_have_class(MUTED)  # the list, reloaded, says so
    assert choices_for(user).muted_kinds == ("build.failed",)
    assert row.evaluate("(node) => node.contains(document.activeElement)")  # the focus stays on the item
    expect(widget.live_region).to_have_text("Muted build.failed. Preferences can undo it.")


@pytest.mark.parametrize(("path", "scheme"), [("/", "light"), ("/admin/", "light"), ("/admin/", "dark")])
def test_the_open_panel_and_mute_menu_pass_axe(browsers, path, scheme):
    user = named_user("alice", superuser=True)  # names for the screenshot's sake
    subject = named_user("bob")
    update(user, {"muted_kinds": ["model.updated"], "muted_topics": [f"object:auth.user:{subject.pk}"]}, partial=True)
    notify(user, "Your export is ready", body="users.csv, 2 MB", url="/admin/", target=subject)
    widget = browsers.open(user, path, init_script=axe.source())
    widget.page.emulate_media(color_scheme=scheme)
    audit = Audit(widget.page)

    widget.open()
    item(widget, "Your export is ready").get_by_role("button", name="Mute options: Your export is ready").click()
    audit("mute choices open")
    panel = Panel(widget)
    expect(panel.muted("Muted topics")).to_have_count(1)
    audit("preferences open")
    if path == "/admin/":
        widget.page.mouse.move(0, 0)  # no button shown hovered
        widget.screenshot(f"preferences-open-{scheme}", widget.page.locator("#header"), widget.panel)
    force_unknown_language(panel)
    panel.save.click()
    expect(panel.alert).not_to_be_empty()
    audit("preferences with an error")
    audit.assert_clean()


def test_the_mute_menu_mutes_one_object_and_its_next_events_are_listed_untoasted(browsers):
    user = make_user("objects")
    bob = make_user("bob")
    notify(user, "Bob changed", target=bob)
    widget = browsers.open(user, "/")
    widget.open()
    row = item(widget, "Bob changed")
    expect(row).not_to_have_class(MUTED)
    row.get_by_role("button", name="Mute options: Bob changed").click()
    row.get_by_role("button", name=f"Mute notifications about auth.user “{bob.username}”").click()
    expect(row).to_have_class(MUTED)
    assert choices_for(user).muted_topics == (f"object:auth.user:{bob.pk}",)

    notify(user, "Bob again", target=bob)
    notify(user, "Control")
    expect(widget.toast("Control")).to_be_visible()
    assert widget.events() == ["Bob again", "Control"]
    expect(widget.toast("Bob again")).to_have_count(0)

    widget.page.reload()  # the feed says which are muted
    widget.wait_live()
    widget.open()
    assert widget.item_titles() == ["Control", "Bob again", "Bob changed"]
    expect(item(widget, "Bob again")).to_have_class(MUTED)
    expect(item(widget, "Control")).not_to_have_class(MUTED)

    panel = Panel(widget)  # and the panel can undo it
    panel.remove(f"object:auth.user:{bob.pk}").click()
    panel.saved()
    assert choices_for(user).muted_topics == ()
    notify(user, "Bob once more", target=bob)
    expect(widget.toast("Bob once more")).to_be_visible()


def test_a_change_in_one_tab_reaches_the_other_tabs_and_devices_keeping_their_own_edits(browsers):
    user = make_user("everywhere")
    first = browsers.open(user, "/")
    second = browsers.new_page(first, "/")  # the same browser: one socket for both
    second.wait_live()
    device = browsers.open(user, "/")  # another browser: a socket of its own
    other_tab, other_device = Panel(second), Panel(device)
    other_tab.digest.select_option("daily")  # an edit not saved yet in the other tab

    panel = Panel(first)
    panel.toasts.uncheck()
    panel.push.uncheck()
    panel.saved()

    for each in (other_tab, other_device):
        expect(each.toasts).not_to_be_checked()
        expect(each.push).not_to_be_checked()
    expect(other_tab.digest).to_have_value("daily")  # what the user is editing there stays
    notify(user, "Nowhere toasted")
    for widget in (first, second, device):
        widget.expect_unread(1)
    for widget in (first, second, device):
        expect(widget.toasts).to_have_count(0)

    other_tab.saved()  # saving there sends only its own change
    choices = choices_for(user)
    assert (choices.toasts, choices.push, choices.digest) == (False, False, "daily")


# The widget's data-vapid-public-key, set as the parser inserts the widget (before its script
# runs), as a site with Web Push renders it: this test site has none.
WITH_VAPID_KEY = """
new MutationObserver((changes, observer) => {
  const widget = document.querySelector("[data-ntf-widget]");
  if (widget) {
    widget.dataset.vapidPublicKey = "%s";
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
""" % VAPID_PUBLIC_KEY


def test_the_device_control_shows_only_with_a_vapid_key_and_says_when_notifications_are_not_allowed(browsers):
    user = make_user("device")
    widget = browsers.open(user, "/")
    panel = Panel(widget)
    expect(panel.element.locator("[data-ntf-device]")).to_have_count(0)

    # What the template tag renders for a site with Web Push (this site has none: the key is
    # added to the page as it comes from the server).
    other = browsers.open(user, "/", init_script=WITH_VAPID_KEY)
    panel = Panel(other)
    device = panel.element.get_by_role("button", name="Notify me on this device")
    expect(device).to_be_visible()
    expect(panel.element.locator("[data-ntf-device]")).to_contain_text("This device gets no push notifications.")
    device.click()  # the context has no notifications permission: the browser refuses it
    status = panel.element.locator("[data-ntf-device] [role=status]")
    expect(status).to_have_text(re.compile("^Notifications are not allowed for this site"))
    expect(device).to_be_enabled()
    expect(device).to_have_accessible_description(re.compile("Notifications are not allowed for this site"))
