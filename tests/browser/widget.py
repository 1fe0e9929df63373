"""The widget as the tests see it: locators for its parts, and screenshots of its states."""

import json

from playwright.sync_api import expect

from ..relay import BASE_DIR

SCREENSHOTS = BASE_DIR / "artifacts" / "screenshots"
# Waits for what the servers do: generous, bounded. The "within 2 s" uses its own timeout.
TIMEOUT = 10_000


class WidgetPage:
    def __init__(self, page):
        self.page = page
        self.root = page.locator("[data-ntf-widget]").first
        self.bell = self.root.locator("[data-ntf-bell]")
        self.badge = self.root.locator("[data-ntf-badge]")
        self.state = self.root.locator("[data-ntf-state]")
        self.panel = self.root.locator("[data-ntf-panel]")
        self.items = self.root.locator("[data-ntf-list] > li")
        self.read_all = self.root.locator("[data-ntf-read-all]")
        self.desktop = self.root.locator("[data-ntf-desktop]")
        self.live_region = self.root.locator("[data-ntf-live]")
        self.preferences_button = self.root.locator("[data-ntf-preferences]")
        self.preferences = self.root.locator("[data-ntf-prefs]")
        self.toasts = page.locator("[data-ntf-toast]")
        self.banner = page.locator("[data-ntf-banner]")
        self.sockets = []  # [{"url", "sent": [frame, ...], "received": [...]}], frames parsed
        page.on("websocket", self._record)

    def _record(self, socket):
        record = {"url": socket.url, "sent": [], "received": []}
        self.sockets.append(record)
        socket.on("framesent", lambda payload: record["sent"].append(json.loads(payload)))
        socket.on("framereceived", lambda payload: record["received"].append(json.loads(payload)))

    def wait_live(self, timeout=TIMEOUT):
        expect(self.root).to_have_attribute("data-state", "live", timeout=timeout)

    def expect_state(self, state, timeout=TIMEOUT):
        expect(self.root).to_have_attribute("data-state", state, timeout=timeout)
        expect(self.state).to_have_text(state)

    def expect_unread(self, count, timeout=TIMEOUT):
        """The badge shows `count` ("99+" above 99), or is hidden for 0."""
        expect(self.root).to_have_attribute("data-unread", str(count), timeout=timeout)
        if count:
            expect(self.badge).to_be_visible()
            expect(self.badge).to_have_text("99+" if count > 99 else str(count))
        else:
            expect(self.badge).to_be_hidden()

    def toast(self, title):
        return self.toasts.filter(has_text=title)

    def open(self):
        self.bell.click()
        expect(self.panel).to_be_visible()

    def open_preferences(self):
        """The dropdown's preferences panel, open and loaded (its fields filled in)."""
        if self.panel.is_hidden():
            self.open()
        self.preferences_button.click()
        expect(self.preferences).to_be_visible()
        expect(self.preferences.locator("select[name=digest] option")).not_to_have_count(0)
        return self.preferences

    def item_titles(self):
        return self.items.locator(".ntf-item-title").all_text_contents()

    def events(self):
        """Titles of the live events the widget accepted on this page, in order."""
        return self.page.evaluate("window.__ntfEvents")

    def screenshot(self, name, *locators, padding=12):
        """artifacts/screenshots/<name>.png: the region around `locators`, or the viewport."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        boxes = [box for box in (locator.bounding_box() for locator in locators) if box]
        if not boxes:
            self.page.screenshot(path=path, animations="disabled")
            return path
        viewport = self.page.viewport_size
        left = max(0, min(box["x"] for box in boxes) - padding)
        top = max(0, min(box["y"] for box in boxes) - padding)
        right = min(viewport["width"], max(box["x"] + box["width"] for box in boxes) + padding)
        bottom = min(viewport["height"], max(box["y"] + box["height"] for box in boxes) + padding)
        self.page.screenshot(path=path, animations="disabled", clip={"x": left, "y": top, "width": right - left, "height": bottom - top})
        return path
