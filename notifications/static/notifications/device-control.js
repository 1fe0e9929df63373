/**
 * "Notify me on this device": the preferences panel's control for Web Push on this browser
 * (push.js). It exists only where the site configured push (the widget's `data-vapid-public-key`),
 * says when this browser cannot receive pushes, and shows why a subscription failed (the
 * permission denied, the server refusing) next to the button, in a live region.
 */

import { button, el, uniqueId } from "./dom.js";
import { gettext as _ } from "./i18n.js";
import { deviceSubscribed, dropSubscriptionNotHeld, pushSupported, subscribeDevice, unsubscribeDevice } from "./push.js";

// The page's check of the browser's subscription, by service worker and URL: one a page,
// however many widgets it has (they share one client the same way).
const checks = new Map();

/**
 * The push settings of a widget's data-* attributes, or null when the site has no VAPID key.
 * `checked` settles once a subscription the server no longer holds for this user is dropped
 * (push.js): the control waits for it before it says whether this device is subscribed.
 */
export function pushConfig(data, csrfToken) {
  if (!data.vapidPublicKey) return null;
  const config = {
    vapidPublicKey: data.vapidPublicKey,
    serviceWorkerUrl: data.serviceWorkerUrl || "",
    subscriptionsUrl: data.pushSubscriptionsUrl || "",
    heldUrl: data.pushHeldUrl || "",
    csrfToken,
  };
  const key = `${config.serviceWorkerUrl} ${config.heldUrl}`;
  if (!checks.has(key)) checks.set(key, dropSubscriptionNotHeld(config).catch(() => {}));
  config.checked = checks.get(key);
  return config;
}

export class DeviceControl {
  constructor(config) {
    this.config = config;
    this.subscribed = false;
    this.busy = false;
    this.element = el("div", "ntf-field ntf-device");
    this.element.dataset.ntfDevice = "";
    const label = el("span", "ntf-field-label", _("This device"));
    label.id = uniqueId("ntf-device-label");
    this.button = button("ntf-secondary-button", _("Notify me on this device"));
    this.button.dataset.ntfDeviceButton = "";
    this.status = el("p", "ntf-device-status");
    this.status.id = uniqueId("ntf-device-status");
    this.status.setAttribute("role", "status");
    this.button.setAttribute("aria-describedby", `${label.id} ${this.status.id}`);
    this.button.addEventListener("click", () => this.toggle());
    this.element.append(label, this.button, this.status);
  }

  /** Show whether this browser is subscribed (asked of the browser each time the panel opens). */
  async refresh() {
    if (!pushSupported()) {
      this.button.disabled = true;
      this.say(_("This browser cannot receive push notifications here."));
      return;
    }
    try {
      await this.config.checked;
      this.subscribed = await deviceSubscribed(this.config);
    } catch {
      this.subscribed = false;
    }
    this.render();
  }

  render() {
    this.button.textContent = this.subscribed ? _("Stop notifying this device") : _("Notify me on this device");
    this.say(this.subscribed ? _("This device gets push notifications.") : _("This device gets no push notifications."));
  }

  async toggle() {
    if (this.busy) return; // not disabled while busy: that would drop the focus
    this.busy = true;
    this.say(this.subscribed ? _("Stopping…") : _("Subscribing this device…"));
    try {
      if (this.subscribed) await unsubscribeDevice(this.config);
      else await subscribeDevice(this.config);
      this.subscribed = !this.subscribed;
      this.render();
    } catch (error) {
      this.say(error.message, true);
    } finally {
      this.busy = false;
    }
  }

  say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("ntf-field-error", isError);
  }
}
