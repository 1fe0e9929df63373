"""
The widget in the reader's language, in Chromium: a French user sees another admin's change as a
French toast, French relative times ("il y a 3 minutes"), the widget's own words and the change
form's banner in French;
an Arabic page lays the widget out right to left (mirrored badge and dropdown, `direction: rtl`),
in Arabic, with no axe violation. The right-to-left screenshot is docs/images/widget-rtl.png.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from notifications import notify
from notifications.models import Event

from ..relay import BASE_DIR
from . import axe
from .test_accessibility import Audit
from .test_widget import DELIVERY_TIMEOUT, change_in_admin, named_user

pytestmark = pytest.mark.django_db(transaction=True)

RTL_SCREENSHOT = BASE_DIR / "docs" / "images" / "widget-rtl.png"


def in_language(browsers, language):
    """A Browsers.open setup: the context's language cookie, as Django's set_language view leaves it."""

    def setup(context):
        context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": browsers.base_url}])

    return setup


def notified_minutes_ago(user, title, minutes):
    event = notify(user, title)
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))


def test_a_french_user_sees_french_toasts_times_and_widget(browsers):
    root = named_user("admin", superuser=True)
    marie = named_user("marie", staff=True, perms=["auth.view_user"], joined=timezone.now() - timedelta(hours=1))
    bob = named_user("bob")
    notified_minutes_ago(marie, "Export prêt", 3)

    french = browsers.open(marie, "/admin/", setup=in_language(browsers, "fr"))
    editing = browsers.open(root, "/admin/")  # the admin's own page is in English
    expect(french.page.locator("html")).to_have_attribute("lang", "fr")
    expect(french.state).to_have_text("en direct")
    french.expect_unread(1)
    expect(french.bell).to_have_attribute("aria-label", "Notifications, 1 non lue")

    change_in_admin(editing.page, bob, "Robert")
    title = f"{root.username} a modifié utilisateur « {bob.username} »"
    toast = french.toast(title)
    expect(toast).to_be_visible(timeout=DELIVERY_TIMEOUT)
    expect(toast.locator("[aria-label='Fermer la notification']")).to_be_visible()
    french.expect_unread(2)
    expect(french.bell).to_have_attribute("aria-label", "Notifications, 2 non lues")

    french.open()
    expect(french.read_all).to_have_text("Tout marquer comme lu")
    assert french.item_titles() == [title, "Export prêt"]
    expect(french.items.nth(1).locator("time")).to_have_text("il y a 3 minutes")
    expect(french.items.nth(0).locator("time")).to_have_text("maintenant")
    expect(french.items.nth(0).locator(".ntf-item-read")).to_have_attribute("aria-label", "Marquer comme lue")
    french.screenshot("widget-french", french.page.locator("#header"), french.panel)

    # On the change form of the object another admin changes: the banner's sentence, its
    # punctuation and its action, all French.
    french.page.goto(f"/admin/auth/user/{bob.pk}/change/")
    expect(french.state).to_have_text("en direct")
    change_in_admin(editing.page, bob, "Bob")
    expect(french.banner).to_have_text(f"{root.username} a modifié cet objet. Recharger", timeout=DELIVERY_TIMEOUT)


def test_an_arabic_page_lays_the_widget_out_right_to_left(browsers):
    editor = named_user("admin", superuser=True)
    reader = named_user("layla", staff=True, perms=["auth.view_user"], joined=timezone.now() - timedelta(hours=1))
    bob = named_user("bob")
    LogEntry.objects.log_actions(editor.pk, get_user_model().objects.filter(pk=bob.pk), CHANGE, change_message="[]")
    notified_minutes_ago(reader, "تقرير جاهز", 5)

    arabic = browsers.open(reader, "/admin/", setup=in_language(browsers, "ar"), init_script=axe.source())
    page = arabic.page
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert arabic.root.evaluate("(node) => getComputedStyle(node).direction") == "rtl"
    arabic.expect_unread(2)

    # The badge sits on the bell's inline-start side: its left, right to left.
    bell, badge = arabic.bell.bounding_box(), arabic.badge.bounding_box()
    assert badge["x"] + badge["width"] / 2 < bell["x"] + bell["width"] / 2, (badge, bell)

    arabic.open()
    root, panel = arabic.root.bounding_box(), arabic.panel.bounding_box()
    # Anchored at the widget's inline end (its left edge here), the dropdown opens rightward.
    assert abs(panel["x"] - root["x"]) <= 1, (panel, root)
    assert panel["x"] + panel["width"] <= page.viewport_size["width"]
    expect(arabic.panel.locator(".ntf-panel-title")).to_have_text("الإشعارات")
    expect(arabic.read_all).to_have_text("تعليم الكل كمقروء")
    assert arabic.item_titles() == ["تقرير جاهز", f"عدّل {editor.username} المستخدم «{bob.username}»"]

    arabic.open_preferences()
    arrow = arabic.preferences.locator(".ntf-prefs-back-arrow")
    assert arrow.evaluate("(node) => getComputedStyle(node).transform") == "matrix(-1, 0, 0, 1, 0, 0)"
    expect(arabic.preferences.locator("[data-ntf-prefs-back]")).to_contain_text("رجوع")
    page.keyboard.press("Escape")  # back to the list, the dropdown still open
    expect(arabic.items.first).to_be_visible()

    audit = Audit(page)
    audit("open, right to left")
    audit.assert_clean()

    RTL_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    boxes = [page.locator("#header").bounding_box(), arabic.panel.bounding_box()]
    left, top = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    right, bottom = max(b["x"] + b["width"] for b in boxes), max(b["y"] + b["height"] for b in boxes)
    clip = {"x": left, "y": top, "width": min(right, page.viewport_size["width"]) - left, "height": bottom - top + 12}
    page.screenshot(path=RTL_SCREENSHOT, animations="disabled", clip=clip)
