/**
 * Web Push on this device, the browser's side: register the app's service worker, ask for the
 * permission to notify, subscribe with the site's VAPID public key, and tell the server the
 * subscription (POST `/notifications/api/push-subscriptions/`, docs/protocol.md); or undo it
 * (DELETE there, then unsubscribe). The server sends the pushes; the service worker shows them.
 *
 * Failures throw a PushError whose `code` says what happened ("unsupported", "denied",
 * "subscribe", "server") and whose message can be shown to the user as it is.
 */

import { requestJson } from "./http.js";
import { gettext as _ } from "./i18n.js";

const CHECK_TIMEOUT_MS = 10000;

export class PushError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PushError";
    this.code = code;
  }
}

/** Whether this browser can receive Web Push (secure context, service workers, Push API, notifications). */
export function pushSupported() {
  return (
    typeof window !== "undefined" &&
    window.isSecureContext === true &&
    "serviceWorker" in navigator &&
    typeof window.PushManager === "function" &&
    typeof window.Notification === "function"
  );
}

/** The application server key of a VAPID public key (base64url, as the server gives it) as bytes. */
export function vapidKeyBytes(base64url) {
  if (typeof base64url !== "string" || !/^[A-Za-z0-9_-]+={0,2}$/.test(base64url)) {
    throw new PushError("subscribe", _("The site's VAPID public key is not base64url text."));
  }
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const binary = window.atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

async function registration(serviceWorkerUrl) {
  return pushSupported() ? (await navigator.serviceWorker.getRegistration(serviceWorkerUrl)) || null : null;
}

/** The push subscription this device holds for the app's service worker, or null. */
async function currentSubscription(serviceWorkerUrl) {
  const registered = await registration(serviceWorkerUrl);
  return registered ? registered.pushManager.getSubscription() : null;
}

/** Whether this device is subscribed (a push subscription held by the app's service worker). */
export async function deviceSubscribed({ serviceWorkerUrl }) {
  return (await currentSubscription(serviceWorkerUrl)) !== null;
}

/**
 * Run `work` while no other tab of the site changes or checks this browser's subscription (a
 * browser holds one for every tab): a check in one tab must not drop the subscription another
 * tab has made but not yet told the server. Where Web Locks are missing, `work` just runs.
 *
 * @template T
 * @param {() => Promise<T>} work
 * @returns {Promise<T>}
 */
function alone(work) {
  return navigator.locks ? navigator.locks.request("notifications-push-subscription", work) : work();
}

/**
 * Drop this browser's subscription when the server does not hold it for the user on this page
 * (POST {"endpoint"} to `heldUrl`: 404 not_subscribed): it ended with a logout or a new password,
 * or was made by someone who used this browser before. Its pushes then stop at the push service,
 * and the device control says what is true. Any other answer (the server unreachable, push
 * turned off) leaves it be.
 *
 * @param {{serviceWorkerUrl: string, heldUrl: string, csrfToken: string}} options
 */
export async function dropSubscriptionNotHeld({ serviceWorkerUrl, heldUrl, csrfToken }) {
  if (!heldUrl) return;
  await alone(async () => {
    const subscription = await currentSubscription(serviceWorkerUrl);
    if (!subscription) return;
    try {
      // Not forever: the other tabs wait for this one (alone()).
      const signal = AbortSignal.timeout ? AbortSignal.timeout(CHECK_TIMEOUT_MS) : undefined;
      await requestJson(heldUrl, { method: "POST", json: { endpoint: subscription.endpoint }, csrfToken, signal });
    } catch (error) {
      if (error.status === 404 && error.body && error.body.error === "not_subscribed") await subscription.unsubscribe();
    }
  });
}

/** The registration's worker once it is active: a subscription needs one. */
function activated(registered) {
  if (registered.active) return Promise.resolve(registered);
  const worker = registered.installing || registered.waiting;
  return new Promise((resolve, reject) => {
    worker.addEventListener("statechange", () => {
      if (worker.state === "activated") resolve(registered);
      else if (worker.state === "redundant") reject(new PushError("subscribe", _("The service worker could not be installed.")));
    });
  });
}

function sameKey(subscription, key) {
  const held = subscription.options && subscription.options.applicationServerKey;
  return held instanceof ArrayBuffer && new Uint8Array(held).join() === key.join();
}

/**
 * Subscribe this device: the permission first (the browser asks the user), then the service
 * worker and the subscription, then the server. A subscription the server refused is undone.
 *
 * @param {{vapidPublicKey: string, serviceWorkerUrl: string, subscriptionsUrl: string, csrfToken: string}} options
 */
export async function subscribeDevice({ vapidPublicKey, serviceWorkerUrl, subscriptionsUrl, csrfToken }) {
  if (!pushSupported()) throw new PushError("unsupported", _("This browser cannot receive push notifications here."));
  const key = vapidKeyBytes(vapidPublicKey);
  const permission = await window.Notification.requestPermission();
  if (permission !== "granted") {
    throw new PushError("denied", _("Notifications are not allowed for this site: allow them in the browser's site settings, then try again."));
  }
  await alone(() => subscribeLocked(key, serviceWorkerUrl, subscriptionsUrl, csrfToken));
}

async function subscribeLocked(key, serviceWorkerUrl, subscriptionsUrl, csrfToken) {
  let subscription;
  try {
    const registered = await activated(await navigator.serviceWorker.register(serviceWorkerUrl));
    subscription = await registered.pushManager.getSubscription();
    if (subscription && !sameKey(subscription, key)) {
      await subscription.unsubscribe(); // made with another key: the server could not push to it
      subscription = null;
    }
    subscription = subscription || (await registered.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
  } catch (error) {
    if (error instanceof PushError) throw error;
    throw new PushError("subscribe", _("The browser could not subscribe this device: %(reason)s", { reason: error.message }));
  }
  try {
    await requestJson(subscriptionsUrl, { method: "POST", json: subscription.toJSON(), csrfToken });
  } catch (error) {
    await subscription.unsubscribe().catch(() => {});
    throw new PushError("server", _("The server did not take this device's subscription: %(reason)s", { reason: error.message }));
  }
}

/**
 * Stop push notifications to this device: the server forgets the subscription (DELETE), then
 * the browser drops it. One the server no longer knows (404) is dropped all the same.
 *
 * @param {{serviceWorkerUrl: string, subscriptionsUrl: string, csrfToken: string}} options
 */
export function unsubscribeDevice({ serviceWorkerUrl, subscriptionsUrl, csrfToken }) {
  return alone(() => unsubscribeLocked(serviceWorkerUrl, subscriptionsUrl, csrfToken));
}

async function unsubscribeLocked(serviceWorkerUrl, subscriptionsUrl, csrfToken) {
  const subscription = await currentSubscription(serviceWorkerUrl);
  if (!subscription) return;
  try {
    await requestJson(subscriptionsUrl, { method: "DELETE", json: { endpoint: subscription.endpoint }, csrfToken });
  } catch (error) {
    if (error.status !== 404) throw new PushError("server", _("The server could not forget this device: %(reason)s", { reason: error.message }));
  }
  await subscription.unsubscribe();
}
