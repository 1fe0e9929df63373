"""
Accessibility by measurement: axe-core (tests/browser/axe.py) finds no WCAG 2.1 A/AA violation
with the widget closed, open and showing a toast, on the demo page and in the Django admin, in
light and dark colour schemes; and the widget works from the keyboard alone, with the focus
always visible, and its news reaches screen readers.
"""

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from notifications import mark_read, notify

from ..factories import make_user
from . import axe

pytestmark = pytest.mark.django_db(transaction=True)

# Waits for the animations that end (a toast sliding in), not the ones that loop.
SETTLE = """
() => Promise.all(document.getAnimations()
    .filter((animation) => animation.effect.getComputedTiming().iterations !== Infinity)
    .map((animation) => animation.finished))
"""
TOAST_REGION = "New notifications"
# Django's own markup on the user change form, not the widget's, and left out of its audit:
# its split date/time inputs are labelled by bare text ("Date:", "Time:"), not <label>s (axe:
# label), and SelectFilter2.js puts aria-label on role-less <span> icons (aria-prohibited-attr).
DJANGO_CHANGE_FORM = ["p.datetime input", ".help-tooltip.search-label-icon"]


def with_notifications(user):
    """A read one and an unread one, one a link and one not: every kind of item the list shows."""
    mark_read(user, notify(user, "Backup finished", body="Nothing to do."))
    notify(user, "Your export is ready", body="users.csv, 2 MB", url="/admin/")
    return user


class Audit:
    """axe's violations on a page, state by state; `exclude`: selectors left out (see where passed)."""

    def __init__(self, page, exclude=()):
        self.page = page
        self.exclude = exclude
        self.found = {}

    def __call__(self, state):
        self.page.evaluate(SETTLE)
        violations = axe.violations(self.page, self.exclude)
        if violations:
            self.found[state] = violations

    def assert_clean(self):
        assert not self.found, "axe found violations:\n" + "\n".join(
            f"--- {state}:\n{axe.report(violations)}" for state, violations in self.found.items()
        )


def audit_widget_states(widget, audit, toast, show_toast):
    """Audit with the widget closed, open, then showing the toast titled `toast` (sent by show_toast())."""
    audit("closed")
    widget.open()
    audit("open")
    widget.page.keyboard.press("Escape")
    show_toast()
    expect(widget.toast(toast)).to_be_visible()
    audit("with a toast")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_demo_page_passes_axe(browsers, scheme):
    user = with_notifications(make_user("demo"))
    widget = browsers.open(user, "/", init_script=axe.source())
    widget.page.emulate_media(color_scheme=scheme)
    audit = Audit(widget.page)
    audit_widget_states(widget, audit, "Hello", lambda: notify(user, "Hello", body="A toast", url="/"))
    audit.assert_clean()


@pytest.mark.parametrize(
    ("scheme", "theme"),
    [("light", "auto"), ("dark", "auto"), ("light", "dark"), ("dark", "light")],
    ids=["light", "dark", "light-system-dark-theme", "dark-system-light-theme"],
)
def test_the_admin_index_passes_axe(browsers, scheme, theme):
    """The admin follows the system's colour scheme ("auto"), or the theme chosen with its toggle."""
    user = with_notifications(make_user("staff", superuser=True))
    widget = browsers.open(user, "/admin/", init_script=axe.source())
    widget.page.emulate_media(color_scheme=scheme)
    if theme != "auto":
        widget.page.locator("#user-tools .theme-toggle").click()  # auto → the other theme
        expect(widget.page.locator("html")).to_have_attribute("data-theme", theme)
    audit = Audit(widget.page)
    audit_widget_states(widget, audit, "Hello", lambda: notify(user, "Hello", body="A toast", url="/admin/"))
    audit.assert_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_an_admin_change_form_passes_axe_with_the_banner(browsers, scheme):
    """On a change form, someone else's change shows a toast and the banner; a deletion, its other form."""
    viewer = with_notifications(make_user("viewer", superuser=True))
    editor = make_user("editor", superuser=True)
    subject = make_user("subject")
    widget = browsers.open(viewer, f"/admin/auth/user/{subject.pk}/change/", init_script=axe.source())
    widget.page.emulate_media(color_scheme=scheme)

    def logged_by_editor(action, message=""):
        # What the admin's change and delete views log, without driving a second browser through them.
        LogEntry.objects.log_actions(editor.pk, get_user_model().objects.filter(pk=subject.pk), action, change_message=message)

    audit = Audit(widget.page, exclude=DJANGO_CHANGE_FORM)
    audit_widget_states(widget, audit, subject.username, lambda: logged_by_editor(CHANGE, "Changed First name."))
    expect(widget.banner).to_have_text(f"{editor.username} changed this object. Reload")
    logged_by_editor(DELETION)
    expect(widget.banner).to_have_text(f"{editor.username} deleted this object. Back to the list")
    audit("with the deletion banner")
    audit.assert_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_widget_s_error_message_passes_axe(browsers, scheme):
    widget = browsers.open(make_user("unlucky", superuser=True), "/admin/", init_script=axe.source())
    widget.page.emulate_media(color_scheme=scheme)
    widget.page.route("**/notifications/api/**", lambda route: route.fulfill(status=500, json={"message": "Down."}))
    widget.page.reload()
    widget.open()
    expect(widget.panel.locator("[data-ntf-message]")).to_have_text("Could not load notifications.")
    audit = Audit(widget.page)
    audit("open, with an error")
    audit.assert_clean()


# The keyboard ---------------------------------------------------------------------------------

# How the focused element shows it: whether the browser counts it as keyboard focus, and its ring.
FOCUS_RING = """
() => {
    const focused = document.activeElement;
    const style = getComputedStyle(focused);
    return {
        element: focused.outerHTML.slice(0, 120),
        focusVisible: focused.matches(":focus-visible"),
        outline: style.outlineStyle === "none" ? 0 : parseFloat(style.outlineWidth),
    };
}
"""


def assert_focus_visible(page):
    ring = page.evaluate(FOCUS_RING)
    assert ring["focusVisible"] and ring["outline"] >= 2, f"No visible focus ring on {ring['element']}: {ring}"


def tab_to(page, target, limit=40):
    """Press Tab from the top of the page until `target` has the focus; the elements passed on the way."""
    passed = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("(node) => node === document.activeElement"):
            return passed
        passed.append(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))
    raise AssertionError(f"Tab never reached {target} in {limit} presses, passing: {passed}")


@pytest.mark.parametrize("path", ["/", "/admin/"])
def test_the_widget_works_from_the_keyboard_with_the_focus_always_visible(browsers, path):
    user = with_notifications(make_user("keys", superuser=True))
    widget = browsers.open(user, path)
    page = widget.page

    tab_to(page, widget.bell)
    assert_focus_visible(page)

    page.keyboard.press("Space")  # a button: Space opens it as Enter does
    expect(widget.panel).to_be_visible()
    expect(widget.items.locator("[data-ntf-item]").first).to_be_focused()
    assert_focus_visible(page)
    # Every control in the dropdown shows the focus: "Mark all read" (before the list), then in Tab order.
    page.keyboard.press("Shift+Tab")
    expect(widget.read_all).to_be_focused()
    assert_focus_visible(page)
    controls = widget.panel.locator("a:visible, button:visible:enabled").count()
    for _ in range(controls - 1):
        page.keyboard.press("Tab")
        assert widget.panel.evaluate("(panel) => panel.contains(document.activeElement)")
        assert_focus_visible(page)
    page.keyboard.press("Tab")  # out of the dropdown, on into the page: the dropdown closes
    expect(widget.panel).to_be_hidden()
    assert not widget.root.evaluate("(root) => root.contains(document.activeElement)")
    page.keyboard.press("Shift+Tab")
    expect(widget.bell).to_be_focused()

    page.keyboard.press("Enter")
    expect(widget.panel).to_be_visible()
    page.keyboard.press("Escape")
    expect(widget.panel).to_be_hidden()
    expect(widget.bell).to_be_focused()  # the focus returns to the bell
    assert_focus_visible(page)


def test_an_empty_dropdown_shows_where_the_focus_is(browsers):
    widget = browsers.open(make_user("nothing"), "/")
    tab_to(widget.page, widget.bell)
    widget.page.keyboard.press("Enter")
    expect(widget.panel).to_be_focused()  # nothing to list: the dropdown itself takes the focus
    expect(widget.panel).to_contain_text("No notifications yet.")
    assert_focus_visible(widget.page)
    widget.page.keyboard.press("Escape")
    expect(widget.bell).to_be_focused()


# Toasts and screen readers ------------------------------------------------------------------------


def accessibility_node(page, selector):
    """What Chromium exposes to assistive technology for the first node matching `selector`."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        found = cdp.send("Accessibility.getPartialAXTree", {"nodeId": node, "fetchRelatives": False})["nodes"][0]
    finally:
        cdp.detach()
    properties = {item["name"]: item["value"].get("value") for item in found.get("properties", [])}
    return {"ignored": found["ignored"], **properties}


def test_toasts_are_announced_once_and_sit_in_a_landmark_while_shown(browsers):
    user = make_user("listener")
    widget = browsers.open(user, "/")
    page = widget.page
    # A second widget on the page (a copy of the markup, started by the same module).
    page.evaluate(
        """async () => {
            const copy = document.querySelector("[data-ntf-widget]").cloneNode(true);
            copy.dataset.state = "connecting";
            document.querySelector("h1").after(copy);
            const module = await import(document.querySelector("script[src$='widget.js']").src);
            module.init(copy);
        }"""
    )
    expect(page.locator("[data-ntf-widget]").nth(1)).to_have_attribute("data-state", "live")
    # The live region is in the page, and exposed, before anything is said in it.
    region = accessibility_node(page, "[data-ntf-live]")
    assert region["ignored"] is False and region["live"] == "polite" and region["atomic"] is True, region

    notify(user, "Build passed", body="main, 4 minutes", url="/")
    landmark = page.get_by_role("region", name=TOAST_REGION)
    toast = landmark.locator("[data-ntf-toast]").filter(has_text="Build passed")
    expect(toast).to_be_visible()
    spoken = page.locator("[aria-live]").filter(has_text="Build passed")
    expect(spoken).to_have_count(1)  # one announcement however many widgets the page has
    expect(spoken).to_have_text("New notification: Build passed. main, 4 minutes")

    dismiss = toast.get_by_role("button", name="Dismiss notification")
    tab_to(page, dismiss)  # the toasts come last in the Tab order
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(toast).to_have_count(0)
    expect(landmark).to_have_count(0)  # no empty landmark left behind
