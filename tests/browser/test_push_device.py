"""
"Notify me on this device" (push.js through the preferences panel) with the site's real
service worker and push-subscriptions endpoint. Headless Chromium cannot register with a push
service (its PushManager.subscribe fails: no push service to reach), so the page's PushManager
is replaced by one that hands out a subscription the test made (tests/pushservice.py's Device,
on a push service origin the site allows): everything else is real, from the permission to the
row the server stores and deletes. The first test's screenshot of the panel, with the device
control, is docs/images/preferences.png.
"""

import json

import pytest
from django.conf import settings
from playwright.sync_api import expect

from notifications.models import PushSubscription
from notifications.preferences import update
from notifications.webpush import vapid

from ..factories import login, make_user
from ..pushservice import Device, b64url_decode
from . import axe
from .test_accessibility import Audit
from .test_languages import in_language
from .test_preferences_panel import Panel
from .test_widget import named_user

pytestmark = pytest.mark.django_db(transaction=True)

PUSH_SERVICE = "https://push.example.com"
# The browser's PushManager, as a push service would answer it: the subscription `json` (what
# toJSON() gives), made with the key the page passes; what was asked is kept for the test. Like
# a real one, the subscription outlives the page and is the same in every tab (localStorage).
FAKE_PUSH_MANAGER = """
(() => {
  const json = %s;
  const made = (key) => ({
    endpoint: json.endpoint,
    options: {userVisibleOnly: true, applicationServerKey: new Uint8Array(key).buffer},
    toJSON: () => json,
    unsubscribe: async () => {
      localStorage.removeItem("fakePushKey");
      window.__pushUnsubscribed += 1;
      return true;
    },
  });
  window.__pushAsked = [];
  window.__pushUnsubscribed = 0;
  PushManager.prototype.getSubscription = async function () {
    const key = localStorage.getItem("fakePushKey");
    return key ? made(JSON.parse(key)) : null;
  };
  PushManager.prototype.subscribe = async function (options) {
    const key = Array.from(new Uint8Array(options.applicationServerKey));
    window.__pushAsked.push({userVisibleOnly: options.userVisibleOnly, key});
    localStorage.setItem("fakePushKey", JSON.stringify(key));
    return made(key);
  };
})();
"""


@pytest.fixture
def push_site(start_site, relay):
    """A site with VAPID keys (the widget then carries data-vapid-public-key) allowing PUSH_SERVICE."""
    private, public = vapid.generate()
    env = {
        "NOTIFICATIONS_VAPID_PUBLIC_KEY": public,
        "NOTIFICATIONS_VAPID_PRIVATE_KEY": private,
        "NOTIFICATIONS_VAPID_SUBJECT": "mailto:push-tests@example.com",
        "NOTIFICATIONS_PUSH_SERVICES": json.dumps([PUSH_SERVICE]),
    }
    site = start_site(relay, settings_module="tests.settings_push", extra_env=env)
    site.vapid_public_key = public
    return site


def test_notify_me_on_this_device_subscribes_it_with_the_server_and_stops_again(push_site, browsers_on):
    user = named_user("alice", superuser=True)  # names for the screenshot's sake (docs/images/preferences.png)
    update(user, {"muted_kinds": ["model.updated"], "muted_topics": ["model:auth.group"]}, partial=True)
    device = Device(f"{PUSH_SERVICE}/send/device-1")
    script = FAKE_PUSH_MANAGER % json.dumps(device.to_json())
    widget = browsers_on(push_site).open(user, "/admin/", init_script=script, permissions=["notifications"])
    expect(widget.root).to_have_attribute("data-vapid-public-key", push_site.vapid_public_key)
    panel = Panel(widget)
    control = panel.element.locator("[data-ntf-device]")
    expect(control).to_contain_text("This device gets no push notifications.")
    widget.screenshot("preferences-with-push", widget.page.locator("#header"), widget.panel)

    panel.element.get_by_role("button", name="Notify me on this device").click()
    expect(control).to_contain_text("This device gets push notifications.")
    stop = panel.element.get_by_role("button", name="Stop notifying this device")
    expect(stop).to_be_focused()  # the button kept the focus while it worked
    [asked] = widget.page.evaluate("window.__pushAsked")
    assert asked == {"userVisibleOnly": True, "key": list(b64url_decode(push_site.vapid_public_key))}
    stored = PushSubscription.objects.get(user_id=user.pk)
    assert (stored.endpoint, stored.p256dh, stored.auth) == (device.endpoint, device.to_json()["keys"]["p256dh"], device.to_json()["keys"]["auth"])
    scope = widget.page.evaluate("navigator.serviceWorker.getRegistration('/static/notifications/sw.js').then((r) => r && r.scope)")
    assert scope == f"{push_site.url}/static/notifications/"  # the site's service worker, registered

    stop.click()
    expect(control).to_contain_text("This device gets no push notifications.")
    assert not PushSubscription.objects.filter(user_id=user.pk).exists()
    assert widget.page.evaluate("window.__pushUnsubscribed") == 1


@pytest.mark.parametrize(
    ("scheme", "language", "button", "refused"),
    [
        ("light", "en", "Notify me on this device", "The server did not take this device's subscription"),
        ("dark", "en", "Notify me on this device", "The server did not take this device's subscription"),
        ("light", "fr", "Me prévenir sur cet appareil", "Le serveur n’a pas accepté l’abonnement de cet appareil"),
    ],
)
def test_a_subscription_the_server_refuses_is_undone_and_said_next_to_the_button(
    push_site, browsers_on, scheme, language, button, refused
):
    user = make_user("elsewhere", superuser=True)
    device = Device("https://push.not-allowed.example/send/1")  # not one of the site's push services
    script = axe.source() + FAKE_PUSH_MANAGER % json.dumps(device.to_json())
    browsers = browsers_on(push_site)
    widget = browsers.open(user, "/admin/", init_script=script, permissions=["notifications"], setup=in_language(browsers, language))
    widget.page.emulate_media(color_scheme=scheme)
    audit = Audit(widget.page)
    panel = Panel(widget)
    audit("the device control")
    panel.element.get_by_role("button", name=button).click()
    status = panel.element.locator("[data-ntf-device] [role=status]")
    expect(status).to_contain_text(refused)
    audit("the device control's error")
    audit.assert_clean()
    expect(panel.element.get_by_role("button", name=button)).to_be_visible()
    assert widget.page.evaluate("window.__pushUnsubscribed") == 1
    assert not PushSubscription.objects.filter(user_id=user.pk).exists()


# A subscription lasts as long as the login that made it ---------------------------------------------


def subscribed_through_the_panel(browsers, user, device):
    """`user`'s page on the admin with this device subscribed from the preferences panel."""
    script = FAKE_PUSH_MANAGER % json.dumps(device.to_json())
    widget = browsers.open(user, "/admin/", init_script=script, permissions=["notifications"])
    panel = Panel(widget)
    panel.element.get_by_role("button", name="Notify me on this device").click()
    expect(panel.element.locator("[data-ntf-device]")).to_contain_text("This device gets push notifications.")
    assert PushSubscription.objects.filter(user_id=user.pk, endpoint=device.endpoint).exists()
    return widget


def reopened_as(widget, user):
    """The same browser tab logged in as `user` (a new session cookie, as a login sets), on the admin again."""
    origin = widget.page.evaluate("location.origin")
    widget.page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": login(user).cookie, "url": origin}])
    widget.page.goto("/admin/")
    widget.wait_live()
    return widget


def log_out(widget):
    """The admin's own logout form, then the site's login page it leads to."""
    widget.page.goto("/admin/")
    widget.page.get_by_role("button", name="Log out").click()
    expect(widget.page.get_by_role("button", name="Log in")).to_be_visible()


def device_status(widget):
    return Panel(widget).element.locator("[data-ntf-device] [role=status]")


def test_logging_out_ends_the_devices_pushes_and_the_next_login_finds_it_unsubscribed(push_site, browsers_on):
    user = make_user("shared-computer", superuser=True)
    device = Device(f"{PUSH_SERVICE}/send/shared")
    widget = subscribed_through_the_panel(browsers_on(push_site), user, device)

    log_out(widget)
    assert not PushSubscription.objects.exists()  # nothing is pushed to this browser any more

    reopened_as(widget, user)
    expect(device_status(widget)).to_have_text("This device gets no push notifications.")
    assert widget.page.evaluate("window.__pushUnsubscribed") == 1  # dropped at the push service too


def test_someone_else_logging_in_on_the_browser_drops_the_previous_users_subscription(push_site, browsers_on):
    first, second = make_user("first", superuser=True), make_user("second", superuser=True)
    device = Device(f"{PUSH_SERVICE}/send/kiosk")
    widget = subscribed_through_the_panel(browsers_on(push_site), first, device)

    reopened_as(widget, second)  # no logout: the login replaced the session
    expect(device_status(widget)).to_have_text("This device gets no push notifications.")
    assert widget.page.evaluate("window.__pushUnsubscribed") == 1  # first's pushes stop reaching it
    assert not PushSubscription.objects.filter(user_id=second.pk).exists()


def test_a_subscription_the_server_holds_for_the_user_stays_from_page_to_page(push_site, browsers_on):
    user = make_user("regular", superuser=True)
    device = Device(f"{PUSH_SERVICE}/send/laptop")
    widget = subscribed_through_the_panel(browsers_on(push_site), user, device)

    reopened_as(widget, user)  # a new login of the same user: the page finds the subscription held
    expect(device_status(widget)).to_have_text("This device gets push notifications.")
    assert widget.page.evaluate("window.__pushUnsubscribed") == 0
    log_out(widget)
    assert not PushSubscription.objects.exists()  # the new session ended it


# Holds the page's POSTs to the push-subscriptions endpoint until window.releasePost() is called.
HOLD_SUBSCRIBING = """
(url) => {
  const fetchNow = window.fetch;
  let release;
  const released = new Promise((resolve) => (release = resolve));
  window.releasePost = release;
  window.fetch = async (input, init = {}) => {
    if (String(input).endsWith(url) && init.method === "POST") await released;
    return fetchNow(input, init);
  };
}
"""
WAITING_FOR_THE_LOCK = """
async () => (await navigator.locks.query()).pending.some((lock) => lock.name === "notifications-push-subscription")
"""


def test_a_tab_opened_while_another_subscribes_does_not_drop_the_new_subscription(push_site, browsers_on):
    user = make_user("two-tabs", superuser=True)
    browsers = browsers_on(push_site)
    device = Device(f"{PUSH_SERVICE}/send/two-tabs")
    first = browsers.open(user, "/admin/", init_script=FAKE_PUSH_MANAGER % json.dumps(device.to_json()), permissions=["notifications"])
    first.page.evaluate(HOLD_SUBSCRIBING, "/notifications/api/push-subscriptions/")
    panel = Panel(first)
    panel.element.get_by_role("button", name="Notify me on this device").click()
    first.page.wait_for_function("localStorage.getItem('fakePushKey') !== null")  # subscribed, the server not told yet

    # A second tab's page asks whether the server holds the browser's subscription: not yet.
    second = browsers.new_page(first, "/admin/")
    second.wait_live()
    second.page.wait_for_function(WAITING_FOR_THE_LOCK)  # it waits for the first tab to be done
    with second.page.expect_response("**/push-subscriptions/held/") as answer:
        first.page.evaluate("window.releasePost()")
    assert answer.value.status == 200
    expect(panel.element.locator("[data-ntf-device]")).to_contain_text("This device gets push notifications.")
    expect(device_status(second)).to_have_text("This device gets push notifications.")
    assert second.page.evaluate("localStorage.getItem('fakePushKey')") is not None  # still subscribed
    assert PushSubscription.objects.filter(user_id=user.pk, endpoint=device.endpoint).exists()


def answering(status, body):
    return lambda route: route.fulfill(status=status, json=body)


def test_a_check_without_a_clear_answer_leaves_the_subscription_alone(push_site, browsers_on):
    user = make_user("unsure", superuser=True)
    browsers = browsers_on(push_site)
    widget = subscribed_through_the_panel(browsers, user, Device(f"{PUSH_SERVICE}/send/unsure"))
    PushSubscription.objects.all().delete()  # a 404 now would drop it: the answers below are not one
    for status, body in [(503, {"error": "unavailable", "message": "Redis is unreachable"}), (401, {"error": "not_authenticated"})]:
        widget.page.route("**/push-subscriptions/held/", answering(status, body))
        with widget.page.expect_response("**/push-subscriptions/held/") as answer:
            widget.page.reload()
        assert answer.value.status == status
        widget.page.unroute("**/push-subscriptions/held/")
        expect(device_status(widget)).to_have_text("This device gets push notifications.")
        assert widget.page.evaluate("window.__pushUnsubscribed") == 0
