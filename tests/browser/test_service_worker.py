"""
The Web Push service worker (notifications/sw.js) in Chromium: the widget's page registers it
from its data-service-worker-url, the test delivers push messages to it through the DevTools
protocol (ServiceWorker.deliverPushMessage, as a push service would through the browser), and
reads the notifications it showed back with registration.getNotifications().

getNotifications() is read only once the worker's showNotification() calls have settled:
Chromium drops from its notification database, on every read, the notifications not yet on
display, so a read racing a notification being shown loses it for good.
"""

import json
import time

import pytest

from ..factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

REGISTER = """
async (url) => {
  const registration = await navigator.serviceWorker.register(url);
  const worker = registration.installing || registration.waiting || registration.active;
  if (worker.state !== "activated") {
    await new Promise((resolve) => worker.addEventListener("statechange", () => worker.state === "activated" && resolve()));
  }
  return registration.scope;
}
"""
# Counts the worker's settled showNotification() calls, without changing what they do.
COUNT_SHOWN = """
() => {
  self.settledNotifications = 0;
  const show = ServiceWorkerRegistration.prototype.showNotification;
  ServiceWorkerRegistration.prototype.showNotification = function (...args) {
    return show.apply(this, args).finally(() => (self.settledNotifications += 1));
  };
}
"""
NOTIFICATIONS = """
async (scope) => {
  const registration = await navigator.serviceWorker.getRegistration(scope);
  return (await registration.getNotifications()).map((n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data}));
}
"""


class Worker:
    """The page's service worker, as the DevTools protocol sees it."""

    def __init__(self, widget):
        self.page = widget.page
        self.registrations = {}
        self.cdp = self.page.context.new_cdp_session(self.page)
        self.cdp.on("ServiceWorker.workerRegistrationUpdated", self._updated)
        self.cdp.send("ServiceWorker.enable")
        url = self.page.get_attribute("[data-ntf-widget]", "data-service-worker-url")
        self.scope = self.page.evaluate(REGISTER, url)
        self.origin = self.page.evaluate("location.origin")
        self.script = self._script(self.page.context, f"{self.origin}{url}")
        self.script.evaluate(COUNT_SHOWN)

    @staticmethod
    def _script(context, url):
        """The running worker, as Playwright attached to it."""
        for worker in context.service_workers:
            if worker.url == url:
                return worker
        return context.wait_for_event("serviceworker", lambda worker: worker.url == url)

    def _updated(self, params):
        for registration in params["registrations"]:
            if not registration["isDeleted"]:
                self.registrations[registration["scopeURL"]] = registration["registrationId"]

    def push(self, data):
        self.cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": self.origin, "registrationId": self.registrations[self.scope], "data": data},
        )

    def notifications(self, pushes, timeout=20.0):
        """The notifications on display once the worker has handled `pushes` pushes in all."""
        deadline = time.monotonic() + timeout
        while self.script.evaluate("self.settledNotifications") < pushes and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.page.evaluate(NOTIFICATIONS, self.scope)


def test_a_push_is_shown_as_a_notification_linking_to_a_page_of_the_site(browsers):
    widget = browsers.open(make_user(), "/", permissions=["notifications"])
    worker = Worker(widget)
    assert worker.scope == f"{worker.origin}/static/notifications/"

    worker.push(json.dumps({"title": "Your export is ready", "body": "42 rows", "url": "/exports/42/", "id": 7}))
    [shown] = worker.notifications(1)
    assert shown == {
        "title": "Your export is ready",
        "body": "42 rows",
        "tag": "notification-7",
        "data": {"url": f"{worker.origin}/exports/42/"},
    }


def test_the_same_event_pushed_twice_is_shown_once_and_foreign_links_are_not_followed(browsers):
    widget = browsers.open(make_user(), "/", permissions=["notifications"])
    worker = Worker(widget)

    worker.push("not JSON")  # still shown: every push must be
    message = {"title": "Once", "body": "", "url": "https://elsewhere.example/phish", "id": 8}
    worker.push(json.dumps(message))
    worker.push(json.dumps(message))
    worker.push(json.dumps({"title": "Later", "body": "", "url": "/later/", "id": 9}))
    shown = worker.notifications(4)
    assert sorted((each["title"], each["tag"]) for each in shown) == [
        ("Later", "notification-9"),
        ("New notification", ""),
        ("Once", "notification-8"),
    ]
    assert {each["data"]["url"] for each in shown} == {f"{worker.origin}/", f"{worker.origin}/later/"}
