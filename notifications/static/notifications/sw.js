/**
 * The service worker of Web Push: shows the notifications the site's relay pushes, and opens
 * their page when one is clicked.
 *
 * A push carries `{"title", "body", "url", "id"}` (notifications.webpush.sending). Each is shown
 * with the tag `notification-<id>`, so an event pushed twice (a relay that died mid-push leaves
 * it to another) replaces itself instead of showing twice. A click focuses a window already at
 * the event's page, or opens one; only pages of this site are opened, whatever a message says.
 *
 * The worker handles nothing but `push` and `notificationclick` (no fetch): registered at its
 * own static directory, it controls no page, and needs none to work. A classic script, so every
 * browser that has Push can run it.
 */

"use strict";

// The page registers this worker with its title for a push it cannot read, in the user's
// language (`?title=`, from {% notifications_widget %}).
const DEFAULT_TITLE = new URL(self.location.href).searchParams.get("title") || "New notification";

/**
 * The URL of a page of this site the message names, or null (another origin, not a URL).
 *
 * @param {unknown} url
 * @returns {string | null}
 */
function sitePage(url) {
  if (typeof url !== "string" || url === "") {
    return null;
  }
  try {
    const parsed = new URL(url, self.location.origin);
    return parsed.origin === self.location.origin ? parsed.href : null;
  } catch {
    return null;
  }
}

/**
 * The notification a push message asks for; a message that is not the site's JSON still
 * shows something (browsers require a visible notification for every push).
 *
 * @param {PushMessageData | null} data
 */
function notificationOf(data) {
  let message = {};
  try {
    message = data ? data.json() : {};
  } catch {
    message = {};
  }
  const text = (value) => (typeof value === "string" ? value : "");
  const options = {
    body: text(message.body),
    data: { url: sitePage(message.url) || new URL("/", self.location.origin).href },
  };
  if (typeof message.id === "number" || typeof message.id === "string") {
    options.tag = `notification-${message.id}`;
  }
  return { title: text(message.title) || DEFAULT_TITLE, options };
}

self.addEventListener("install", () => {
  self.skipWaiting(); // a new version takes over at once: it keeps no state worth waiting for
});

self.addEventListener("push", (event) => {
  const { title, options } = notificationOf(event.data);
  event.waitUntil(self.registration.showNotification(title, options));
});

async function openPage(url) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const open = windows.find((client) => client.url === url);
  if (open) {
    return open.focus();
  }
  return self.clients.openWindow(url);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = sitePage(event.notification.data && event.notification.data.url) || new URL("/", self.location.origin).href;
  event.waitUntil(openPage(url));
});
