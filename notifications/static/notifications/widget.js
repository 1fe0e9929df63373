/**
 * The notifications widget: a bell with an unread badge, a dropdown of recent notifications,
 * live toasts, the connection state and, on a Django admin change form, a banner when someone
 * else changes the object on the page and a line saying who else has it open (presence-view.js).
 *
 * A static ES module with no build step and nothing inline: each `[data-ntf-widget]` element
 * rendered by `{% notifications_widget %}` carries its configuration in data-* attributes.
 * It knows the page only: the connection (tickets, backoff, heartbeat, resume, one socket shared
 * by the browser's tabs, polling where WebSockets are blocked) is the headless client's
 * (client.js), one per page, which the page's widgets share. Toasts, desktop notifications and
 * the banner are shared by the page too, so one event is shown once; across tabs, the client
 * names the one tab that shows it.
 *
 * State comes from the HTTP API (the list, the unread count, marking read), reloaded whenever
 * the client (re)connects or is told to resync; live events, read frames and, while polling, the
 * server's unread count come from the client.
 *
 * The user's preferences (preferences.js) decide what interrupts them: an event they muted
 * (`muted` on the client's event) is listed and counted but never toasted, announced or shown
 * on the desktop, and with live toasts off no event is. The dropdown's "Preferences" button
 * opens the panel that edits them (preferences-panel.js), and each item offers to mute what it
 * is about (mute-menu.js).
 *
 * A burst (one actor's events of one kind about one model, the events' `group`) is one list
 * item and one toast (bursts.js): the list is loaded grouped, and later events of a group update
 * its item and its toast instead of adding their own.
 *
 * Event text is untrusted: it only ever reaches the page through textContent, and only
 * relative or http(s) URLs become links.
 */

import { Bursts, listEntry } from "./bursts.js";
import { backoffDelay, NotificationsClient } from "./client.js";
import { DeviceControl, pushConfig } from "./device-control.js";
import { el } from "./dom.js";
import { requestJson } from "./http.js";
import { gettext as _, language, ngettext, relativeTime } from "./i18n.js";
import { muteMenu } from "./mute-menu.js";
import { PreferencesPanel } from "./preferences-panel.js";
import { preferencesFor } from "./preferences.js";
import { showPresence } from "./presence-view.js";

export { backoffDelay };

const FIRST_LOAD_FALLBACK_MS = 2000; // load over HTTP without waiting longer for the relay
const TOAST_MS = 6000;
const MAX_TOASTS = 4;
const PAGE_SIZE = 20;
const LIVE_LOG_SIZE = 200;
const DESKTOP_KEY = "notifications.desktop";
const EVENT_NAME = "notifications:event";
const BANNER_VERBS = {
  "admin.change": "changed",
  "model.updated": "changed",
  "admin.deletion": "deleted",
  "model.deleted": "deleted",
};

// Helpers ---------------------------------------------------------------------------------------

/**
 * The href to use for an event's URL, or null: only links into this site (the page's origin):
 * a path, or an http(s) URL of this origin. Other sites, scheme-relative `//host/` URLs and
 * other schemes are not links (the server refuses them too, docs/security.md).
 */
export function safeUrl(url, origin = window.location.origin) {
  if (typeof url !== "string" || !url) return null;
  const trimmed = url.trim();
  if (!/^\/(?![\/\\])/.test(trimmed) && !/^https?:\/\//i.test(trimmed)) return null;
  try {
    const parsed = new URL(trimmed, origin);
    return parsed.origin === origin ? parsed.href : null;
  } catch {
    return null;
  }
}

export function formatCount(count) {
  return count > 99 ? "99+" : String(count);
}

function isObjectKind(kind) {
  return typeof kind === "string" && (kind.startsWith("admin.") || kind.startsWith("model."));
}

/** Object events the user made themselves are not news to them (the feed leaves them out too). */
export function isOwnObjectEvent(event, userId) {
  return isObjectKind(event.kind) && event.actor != null && String(event.actor.id) === String(userId);
}

function isEvent(event) {
  return event !== null && typeof event === "object" && Number.isInteger(event.id) && typeof event.title === "string";
}

function words(value) {
  return (value || "").split(/[\s,]+/).filter(Boolean);
}

/** The connection state as the widget shows it (the data-state attributes keep the English names). */
function stateName(state) {
  const names = {
    connecting: _("connecting"),
    live: _("live"),
    reconnecting: _("reconnecting"),
    polling: _("polling"),
    offline: _("offline"),
  };
  return names[state] || state;
}

function timeElement(iso) {
  const time = el("time", "ntf-time", relativeTime(iso));
  const date = new Date(iso);
  if (!Number.isNaN(date.getTime())) {
    time.dateTime = date.toISOString();
    time.title = date.toLocaleString(language());
  }
  return time;
}

// What the page shares between widgets: toasts, desktop notifications, the banner ------------------

const shown = new Set(); // event ids already toasted on this page

const desktop = {
  supported() {
    return typeof window.Notification === "function";
  },
  permission() {
    return this.supported() ? window.Notification.permission : "denied";
  },
  enabled() {
    try {
      return this.permission() === "granted" && window.localStorage.getItem(DESKTOP_KEY) === "on";
    } catch {
      return false;
    }
  },
  remember(on) {
    try {
      if (on) window.localStorage.setItem(DESKTOP_KEY, "on");
      else window.localStorage.removeItem(DESKTOP_KEY);
    } catch {
      // storage unavailable (privacy mode): the choice lasts for this page only
    }
  },
  /** On the desktop, if the user turned them on and is not looking at this page. */
  show(event, onClick) {
    if (!this.enabled() || (!document.hidden && document.hasFocus())) return;
    try {
      const notification = new window.Notification(event.title, { body: event.body || "", tag: `ntf-${event.id}` });
      notification.addEventListener("click", () => {
        window.focus();
        notification.close();
        onClick();
      });
    } catch {
      // some browsers only allow notifications from a service worker
    }
  },
};

const toaster = {
  container: null,

  ensure() {
    if (this.container && this.container.isConnected) return this.container;
    // A named landmark (screen readers list it, and can jump to a toast's link or its dismiss
    // button); hidden by the stylesheet while empty. What a toast says is announced by the
    // widget's live region, so the container is not one too (that would say it twice).
    this.container = el("section", "ntf-toasts");
    this.container.setAttribute("aria-label", _("New notifications"));
    this.container.dataset.ntfToasts = "";
    document.body.append(this.container);
    return this.container;
  },

  /** Show `event` once per page; `open` marks it read (and the link navigates). */
  show(event, open) {
    if (shown.has(event.id)) return false;
    shown.add(event.id);
    const container = this.ensure();
    const toast = el("div", "ntf-toast");
    toast.dataset.ntfToast = "";
    toast.dataset.eventId = String(event.id);
    if (Number.isInteger(event.group)) toast.dataset.group = String(event.group); // later events of its group update it (bursts.js)
    const text = el("div", "ntf-toast-text");
    text.append(el("strong", "ntf-toast-title", event.title));
    if (event.body) text.append(el("span", "ntf-toast-body", event.body));
    const href = safeUrl(event.url);
    if (href) {
      const link = el("a", "ntf-toast-link", _("Open"));
      link.href = href;
      link.addEventListener("click", () => open());
      text.append(link);
    }
    const dismiss = el("button", "ntf-toast-dismiss", "×");
    dismiss.type = "button";
    dismiss.setAttribute("aria-label", _("Dismiss notification"));
    dismiss.addEventListener("click", () => remove());
    toast.append(text, dismiss);

    let timer = null;
    const remove = () => {
      clearTimeout(timer);
      toast.remove();
    };
    const start = () => {
      clearTimeout(timer);
      timer = setTimeout(remove, TOAST_MS);
    };
    // Keep a toast while the pointer or the keyboard is on it.
    toast.addEventListener("mouseenter", () => clearTimeout(timer));
    toast.addEventListener("mouseleave", start);
    toast.addEventListener("focusin", () => clearTimeout(timer));
    toast.addEventListener("focusout", start);
    container.prepend(toast);
    while (container.children.length > MAX_TOASTS) container.lastElementChild.remove();
    start();
    return true;
  },
};

/** Where the banner goes (and beside it the presence line): the top of the page's content. */
function bannerSlot() {
  return document.querySelector("[data-ntf-banner-slot]") || document.getElementById("content") || document.querySelector("main") || document.body;
}

const banner = {
  element: null,

  /**
   * "bob changed this object. [Reload]", at the top of the page's content. The sentence carries
   * its own punctuation, in the reader's language; the flex gap, not text, sets the action apart
   * (the space between them is only there for the text a screen reader or a copy reads).
   */
  show(actorName, verb, event) {
    if (!this.element || !this.element.isConnected) {
      this.element = el("div", "ntf-banner");
      this.element.dataset.ntfBanner = "";
      this.element.setAttribute("role", "alert");
      bannerSlot().prepend(this.element);
    }
    const node = this.element;
    node.replaceChildren();
    node.dataset.kind = verb;
    node.append(el("span", "ntf-banner-text", verb === "changed" ? _("%(actor)s changed this object.", { actor: actorName }) : _("%(actor)s deleted this object.", { actor: actorName })));
    let action = null;
    if (verb === "changed") {
      action = el("button", "ntf-banner-action", _("Reload"));
      action.type = "button";
      action.addEventListener("click", () => window.location.reload());
    } else if (safeUrl(event.url)) {
      action = el("a", "ntf-banner-action", _("Back to the list"));
      action.href = safeUrl(event.url);
    }
    if (action) node.append(document.createTextNode(" "), action);
  },
};

// One widget -----------------------------------------------------------------------------------

let instances = 0;

class Widget {
  constructor(root) {
    this.root = root;
    const data = root.dataset;
    this.config = {
      ticketUrl: data.ticketUrl,
      listUrl: data.listUrl,
      readUrl: data.readUrl,
      readAllUrl: data.readAllUrl,
      groupUrl: data.groupUrl || "",
      unreadUrl: data.unreadUrl,
      userId: data.userId,
      csrfToken: data.csrfToken || "",
      topics: words(data.topics).filter((topic) => topic !== "inbox"),
      objectTopic: data.objectTopic || "",
      objectTypes: words(data.objectTypes),
      objectId: data.objectId || "",
      preferencesUrl: data.preferencesUrl || "",
    };
    const part = (name) => root.querySelector(`[data-ntf-${name}]`);
    this.bell = part("bell");
    this.badge = part("badge");
    this.stateNode = part("state");
    this.stateText = part("state-text");
    this.panel = part("panel");
    this.feed = part("feed");
    this.preferencesButton = part("preferences");
    this.list = part("list");
    this.empty = part("empty");
    this.message = part("message");
    this.readAllButton = part("read-all");
    this.olderButton = part("older");
    this.desktopButton = part("desktop");
    this.live = part("live");

    this.items = new Map(); // event id → {event, read, node}
    this.seen = new Set(); // event ids counted in the badge, never counted twice
    this.unread = 0;
    this.countedThrough = 0; // the newest event id a "read" frame's count covered
    this.next = null;
    this.liveLog = []; // [sequence, event] of live events, to merge into a list loaded meanwhile
    this.liveSequence = 0;
    this.loadGeneration = 0;
    this.countGeneration = 0;
    this.loadedOnce = false;
    this.state = "connecting";

    instances += 1;
    this.panel.id = `ntf-panel-${instances}`; // unique however the markup was made (or copied)
    this.bell.setAttribute("aria-controls", this.panel.id);
    // Without the API's URL the widget still follows the preferences the relay sends (toasts,
    // mutes); it just cannot show or change them.
    this.preferences = preferencesFor(this.config.preferencesUrl, this.config.csrfToken);
    this.preferencesPanel = null; // made when first opened
    // Web Push, where the site set it up; checked on every page (device-control.js's pushConfig).
    this.pushSettings = pushConfig(this.root.dataset, this.config.csrfToken);
    this.bursts = new Bursts(this, { safeUrl, timeElement }); // a group's events as one item and one toast
    this.preferencesButton.hidden = !this.config.preferencesUrl;
    this.bindUi();
    this.renderBadge();
    this.renderDesktop();
    this.renderList();
    this.attach(clientFor(this.config));
  }

  // The client -------------------------------------------------------------------------------------

  attach(client) {
    this.client = client;
    client.on("state", ({ state }) => this.onClientState(state));
    client.on("event", (detail) => this.onEvent(detail));
    client.on("read", (detail) => this.onRead(detail));
    client.on("unread", ({ unread_count: count }) => this.takeCount(count));
    this.preferences.follow(client);
    // What the list marks as muted is the server's word: ask it again when the mutes change.
    this.preferences.addEventListener("change", ({ detail }) => detail.mutesChanged && this.loadedOnce && this.loadState());
    if (this.config.preferencesUrl) this.preferences.load().catch(() => {}); // until it answers, toasts are on
    client.on("resync", () => {
      // Missed events cannot be replayed: take the state from the server, live from here on.
      // (Before "connected", the (re)connection reloads it anyway.)
      if (client.state === "connected") this.loadState();
    });
    // Normally the state is loaded once the relay is live (no gap between the two); a relay that
    // is slow or down must not keep the badge empty.
    this.firstLoadTimer = setTimeout(() => {
      if (!this.loadedOnce) this.loadState();
    }, FIRST_LOAD_FALLBACK_MS);
    const topics = [...this.config.topics];
    if (this.config.objectTopic) topics.push(this.config.objectTopic);
    if (topics.length) client.subscribe(topics);
    // On a change form: who else has the object open, and this page announced there.
    if (this.config.objectTopic) showPresence(client, { topic: this.config.objectTopic, userId: this.config.userId, slot: bannerSlot() });
    client.connect();
    this.onClientState(client.state);
  }

  async onClientState(state) {
    if (state === "connected") {
      // Read state is not replayed: after any (re)connection the list and the count are reloaded,
      // and "live" is shown once they are: from then on, what the widget shows is current.
      await this.loadState();
      if (this.client.state === "connected") this.setState("live");
      return;
    }
    if (state === "disconnected") return; // the page is leaving
    this.setState(state); // connecting, reconnecting, polling, offline
    if (state !== "connecting" && !this.loadedOnce) this.loadState(); // the HTTP state at least
  }

  setState(state) {
    this.state = state;
    this.root.dataset.state = state;
    this.stateNode.dataset.state = state;
    this.stateText.textContent = stateName(state);
    this.stateNode.title = _("Live notifications: %(state)s", { state: stateName(state) });
  }

  // Events ---------------------------------------------------------------------------------------

  onEvent({ event, topic, present, desktop: onDesktop, muted }) {
    if (isOwnObjectEvent(event, this.config.userId)) return;
    this.maybeShowBanner(event);
    if (this.seen.has(event.id) || this.items.has(event.id)) return;
    this.seen.add(event.id);
    const listed = muted ? { ...event, muted: true } : event;
    this.liveLog.push([++this.liveSequence, listed]);
    if (this.liveLog.length > LIVE_LOG_SIZE) this.liveLog.shift();
    if (!this.bursts.join(listed)) this.addItem(listed, false, true);
    if (event.id > this.countedThrough) this.setUnread(this.unread + 1);
    const open = () => this.markRead(event.id, { keepalive: true });
    // One tab of the browser shows each event (the client says which), unless the user muted
    // it or turned live toasts off: then it is listed and counted, nothing more.
    const quiet = muted || !this.preferences.toasts;
    if (present && !quiet && !this.bursts.updateToast(event) && toaster.show(event, open)) {
      this.announce(event);
      if (onDesktop) {
        desktop.show(event, () => {
          open();
          const href = safeUrl(event.url);
          if (href) window.location.assign(href);
        });
      }
    }
    this.root.dispatchEvent(new CustomEvent(EVENT_NAME, { bubbles: true, detail: { event, topic } }));
  }

  /** Notifications marked read anywhere (this tab, another, another device): list and badge follow. */
  onRead({ ids, up_to: upTo, unread_count: count, latest }) {
    for (const item of [...this.items.values()]) {
      if (item.event.type === "group") {
        this.bursts.onRead(item, ids, upTo);
        continue;
      }
      const covered = ids ? ids.includes(item.event.id) : upTo !== null && item.event.id <= upTo;
      if (covered && !item.read) this.setItemRead(item, true);
    }
    // Events up to `latest` are in the count: one arriving after this frame is not counted again.
    if (latest !== null) this.countedThrough = Math.max(this.countedThrough, latest);
    this.takeCount(count);
  }

  /** The server's unread count, newer than any answer still on its way. */
  takeCount(count) {
    this.countGeneration += 1;
    this.setUnread(count);
  }

  maybeShowBanner(event) {
    const verb = BANNER_VERBS[event.kind];
    const target = event.target;
    if (!verb || !this.config.objectId || !target) return;
    if (!this.config.objectTypes.includes(target.type) || String(target.id) !== this.config.objectId) return;
    if (event.actor && String(event.actor.id) === String(this.config.userId)) return;
    banner.show(event.actor ? event.actor.username : _("Someone"), verb, event);
  }

  announce(event) {
    // Cleared first (say()), so the same words twice are announced twice.
    this.say(event.body ? _("New notification: %(title)s. %(body)s", { title: event.title, body: event.body }) : _("New notification: %(title)s", { title: event.title }));
  }

  // State over HTTP -------------------------------------------------------------------------------

  request(url, { method = "GET", keepalive = false } = {}) {
    return requestJson(url, { method, keepalive, csrfToken: this.config.csrfToken });
  }

  listUrl(params) {
    const url = new URL(this.config.listUrl, window.location.href);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    return url.href;
  }

  /** The list and the unread count from the server, keeping live events it did not know yet. */
  async loadState() {
    clearTimeout(this.firstLoadTimer);
    this.loadedOnce = true;
    const generation = ++this.loadGeneration;
    const liveMark = this.liveSequence;
    let data;
    try {
      // Grouped (bursts.js) when the page says where a group's members are.
      data = await this.request(this.listUrl(this.config.groupUrl ? { limit: PAGE_SIZE, grouped: 1 } : { limit: PAGE_SIZE }));
    } catch (error) {
      if (generation === this.loadGeneration) this.showMessage(_("Could not load notifications."));
      return;
    }
    if (generation !== this.loadGeneration || !data || !Array.isArray(data.results)) return;
    const results = data.results.map(listEntry).filter(isEvent);
    const known = new Set(results.map((event) => event.id));
    const newest = results.reduce((max, event) => Math.max(max, event.id), 0);
    // Live events that arrived while the request ran and are newer than what it saw.
    const missed = this.liveLog
      .filter(([sequence, event]) => sequence > liveMark && event.id > newest && !known.has(event.id))
      .map(([, event]) => event);
    const focusedId = this.focusedItemId();
    this.items.clear();
    this.list.replaceChildren();
    for (const event of [...missed.reverse(), ...results]) {
      this.seen.add(event.id);
      this.addItem(event, known.has(event.id) ? Boolean(event.read) : false, false);
    }
    this.next = typeof data.next === "string" ? data.next : null;
    this.showMessage("");
    this.applyCount(Number(data.unread_count) || 0, liveMark);
    this.renderList();
    if (focusedId !== null) this.focusItem(focusedId);
  }

  async loadOlder() {
    if (!this.next) return;
    const url = this.next;
    let data;
    try {
      data = await this.request(new URL(url, window.location.href).href);
    } catch {
      this.showMessage(_("Could not load older notifications."));
      return;
    }
    if (!data || !Array.isArray(data.results)) return;
    const results = data.results.map(listEntry).filter(isEvent);
    const first = results.find((event) => !this.items.has(event.id));
    for (const event of results) {
      if (this.items.has(event.id)) continue;
      this.seen.add(event.id);
      this.addItem(event, Boolean(event.read), false);
    }
    this.next = typeof data.next === "string" ? data.next : null;
    this.renderList();
    if (first) this.focusItem(first.id);
  }

  /**
   * Take the unread count the server answered to a request made at live sequence `liveMark`.
   * Live events that arrived meanwhile may or may not be in it (the server counts in its own
   * time): then ask again, since a count asked for after an event arrived includes it (events are
   * published once committed).
   */
  applyCount(count, liveMark) {
    const generation = ++this.countGeneration;
    this.setUnread(count);
    if (this.liveSequence !== liveMark) this.refreshCount(generation);
  }

  async refreshCount(generation, tries = 3) {
    for (let attempt = 0; attempt < tries; attempt += 1) {
      const liveMark = this.liveSequence;
      let data;
      try {
        data = await this.request(this.config.unreadUrl);
      } catch {
        return;
      }
      if (generation !== this.countGeneration) return; // a newer answer took over
      if (data && Number.isInteger(data.unread_count)) this.setUnread(data.unread_count);
      if (this.liveSequence === liveMark) return;
    }
  }

  async markRead(id, { keepalive = false } = {}) {
    const item = this.items.get(id);
    if (item && item.event.type === "group") return this.bursts.markRead(item, { keepalive });
    if (item && item.read) return;
    if (item) this.setItemRead(item, true);
    const liveMark = this.liveSequence;
    try {
      const data = await this.request(this.config.readUrl.replace("{id}", encodeURIComponent(id)), { method: "POST", keepalive });
      if (data && Number.isInteger(data.unread_count)) this.applyCount(data.unread_count, liveMark);
    } catch (error) {
      if (item && error.status !== 404) this.setItemRead(item, false);
      this.showMessage(_("Could not mark the notification as read."));
    }
  }

  async markAllRead() {
    const previous = [...this.items.values()].filter((item) => !item.read);
    previous.forEach((item) => this.setItemRead(item, true));
    const liveMark = this.liveSequence;
    try {
      const data = await this.request(this.config.readAllUrl, { method: "POST" });
      this.applyCount(data && Number.isInteger(data.unread_count) ? data.unread_count : 0, liveMark);
      this.showMessage("");
    } catch {
      previous.forEach((item) => this.setItemRead(item, false));
      this.showMessage(_("Could not mark the notifications as read."));
    }
  }

  // Rendering ------------------------------------------------------------------------------------

  setUnread(count) {
    this.unread = Math.max(0, count);
    this.renderBadge();
  }

  renderBadge() {
    const count = this.unread;
    this.badge.hidden = count === 0;
    this.badge.textContent = count ? formatCount(count) : "";
    this.root.dataset.unread = String(count);
    this.root.dataset.badge = count > 99 ? "wide" : count > 9 ? "double" : count ? "single" : "none";
    this.bell.setAttribute("aria-label", count ? ngettext("Notifications, %(count)s unread", "Notifications, %(count)s unread", count) : _("Notifications"));
    this.renderReadAll();
  }

  addItem(event, read, atTop) {
    const node = el("li", "ntf-item");
    node.dataset.eventId = String(event.id);
    const href = safeUrl(event.url);
    const main = el(href ? "a" : "button", "ntf-item-main");
    if (href) main.href = href;
    else main.type = "button";
    main.dataset.ntfItem = "";
    const status = el("span", "ntf-sr-only", _("Unread: "));
    main.append(status, el("span", "ntf-item-title", event.title));
    if (event.body) main.append(el("span", "ntf-item-body", event.body));
    const meta = el("span", "ntf-item-meta");
    meta.append(timeElement(event.created_at));
    if (event.actor && event.actor.username) meta.append(document.createTextNode(` · ${event.actor.username}`));
    if (event.muted) meta.append(document.createTextNode(" · "), el("span", "ntf-item-muted", _("muted")));
    main.append(meta);
    // The item's event at click time: a group's item stands for its newest member (bursts.js).
    main.addEventListener("click", () => this.markRead(item.event.id, { keepalive: Boolean(href) }));
    const readButton = el("button", "ntf-item-read");
    readButton.type = "button";
    readButton.setAttribute("aria-label", _("Mark as read"));
    readButton.title = _("Mark as read");
    readButton.append(el("span", "ntf-item-read-dot"));
    readButton.addEventListener("click", () => {
      this.markRead(item.event.id);
      main.focus(); // the button disappears with the unread state: keep the focus on the item
    });
    node.append(main);
    if (this.config.preferencesUrl) {
      const { toggle, options } = muteMenu(event, (choice) => this.mute(choice));
      node.append(toggle, readButton, options);
    } else {
      node.append(readButton);
    }
    node.classList.toggle("ntf-muted", Boolean(event.muted));
    const item = { event, read, node, status, readButton };
    this.items.set(event.id, item);
    this.setItemRead(item, read);
    this.bursts.added(item);
    if (atTop) this.list.prepend(node);
    else this.list.append(node);
    if (atTop) this.renderList();
  }

  setItemRead(item, read) {
    item.read = read;
    item.node.classList.toggle("ntf-unread", !read);
    item.status.textContent = read ? "" : _("Unread: ");
    item.readButton.hidden = read;
    this.renderReadAll();
  }

  renderReadAll() {
    this.readAllButton.disabled = this.unread === 0 && ![...this.items.values()].some((item) => !item.read);
  }

  renderList() {
    this.empty.hidden = this.items.size > 0;
    this.olderButton.hidden = !this.next;
    this.renderReadAll();
  }

  renderDesktop() {
    const button = this.desktopButton;
    if (!desktop.supported()) {
      button.hidden = true;
      return;
    }
    button.hidden = false;
    const permission = desktop.permission();
    const on = desktop.enabled();
    button.disabled = permission === "denied";
    button.setAttribute("aria-pressed", String(on));
    button.textContent = permission === "denied" ? _("Desktop notifications: blocked by the browser") : on ? _("Desktop notifications: on") : _("Desktop notifications: off");
  }

  async toggleDesktop() {
    if (!desktop.supported()) return;
    if (desktop.enabled()) {
      desktop.remember(false);
    } else {
      let permission = desktop.permission();
      if (permission === "default") {
        try {
          permission = await window.Notification.requestPermission();
        } catch {
          permission = desktop.permission();
        }
      }
      desktop.remember(permission === "granted");
    }
    this.renderDesktop();
  }

  /** Add a kind or topic to the user's mutes (a mute menu's choice); the list follows (loadState). */
  async mute({ field, name }) {
    try {
      if (!this.preferences.loaded) await this.preferences.load();
      const current = this.preferences.applied[field] || [];
      if (!current.includes(name)) await this.preferences.save({ [field]: [...current, name] });
      this.say(_("Muted %(name)s. Preferences can undo it.", { name }));
    } catch (error) {
      this.showMessage(_("Could not mute %(name)s (%(error)s).", { name, error: error.message }));
    }
  }

  /** Words for screen readers (the widget's live region). */
  say(text) {
    this.live.textContent = "";
    setTimeout(() => {
      this.live.textContent = text;
    }, 50);
  }

  showMessage(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  // The dropdown and the keyboard ------------------------------------------------------------------

  bindUi() {
    this.bell.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close(true)));
    this.readAllButton.addEventListener("click", async () => {
      await this.markAllRead();
      // The button is disabled once nothing is unread: keep the keyboard focus in the dropdown.
      if (this.readAllButton.disabled && !this.panel.hidden) this.panel.focus();
    });
    this.olderButton.addEventListener("click", () => this.loadOlder());
    this.desktopButton.addEventListener("click", () => this.toggleDesktop());
    this.preferencesButton.addEventListener("click", () => this.openPreferences());
    this.root.addEventListener("keydown", (event) => this.onKeydown(event));
    document.addEventListener("pointerdown", (event) => {
      if (!this.panel.hidden && !this.root.contains(event.target)) this.close(false);
    });
    this.root.addEventListener("focusout", (event) => {
      if (!this.panel.hidden && event.relatedTarget && !this.root.contains(event.relatedTarget)) this.close(false);
    });
  }

  open() {
    this.panel.hidden = false;
    this.bell.setAttribute("aria-expanded", "true");
    this.renderDesktop();
    this.refreshTimes();
    if (this.state === "offline") this.client.retry();
    const first = this.itemElements()[0];
    (first || this.panel).focus();
  }

  close(returnFocus) {
    if (this.panel.hidden) return;
    this.showFeed();
    this.panel.hidden = true;
    this.bell.setAttribute("aria-expanded", "false");
    if (returnFocus) this.bell.focus();
  }

  /** The dropdown's second view: the preferences panel (edits not saved stay for next time). */
  openPreferences() {
    if (!this.preferencesPanel) {
      this.preferencesPanel = new PreferencesPanel(this.preferences, {
        device: this.pushSettings ? new DeviceControl(this.pushSettings) : null,
        back: () => this.closePreferences(true),
      });
      this.panel.append(this.preferencesPanel.element);
    }
    this.feed.hidden = true;
    this.panel.setAttribute("aria-label", _("Notification preferences"));
    this.preferencesPanel.show();
  }

  /** Back to the list; with `returnFocus`, on the Preferences button that opened the panel. */
  closePreferences(returnFocus) {
    this.showFeed();
    if (returnFocus) this.preferencesButton.focus();
  }

  showFeed() {
    if (this.preferencesPanel) this.preferencesPanel.hide();
    this.feed.hidden = false;
    this.panel.setAttribute("aria-label", _("Notifications"));
  }

  refreshTimes() {
    for (const item of this.items.values()) {
      const time = item.node.querySelector("time");
      if (time) time.textContent = relativeTime(item.event.created_at);
    }
  }

  itemElements() {
    return [...this.list.querySelectorAll("[data-ntf-item]")];
  }

  focusedItemId() {
    const focused = document.activeElement;
    const node = focused && this.list.contains(focused) ? focused.closest("[data-event-id]") : null;
    return node ? Number(node.dataset.eventId) : null;
  }

  focusItem(id) {
    const item = this.items.get(id);
    if (item) item.node.querySelector("[data-ntf-item]").focus();
  }

  onKeydown(event) {
    if (event.key === "Escape" && !this.panel.hidden) {
      event.preventDefault();
      if (this.feed.hidden) this.closePreferences(true);
      else this.close(true);
      return;
    }
    if (this.panel.hidden || !this.feed.contains(event.target)) return;
    const items = this.itemElements();
    const row = event.target.closest("[data-event-id]"); // from an item or its buttons
    const index = row ? items.indexOf(row.querySelector("[data-ntf-item]")) : -1;
    let target = null;
    if (event.key === "ArrowDown") target = items[index < 0 ? 0 : Math.min(index + 1, items.length - 1)];
    else if (event.key === "ArrowUp") target = items[index < 0 ? items.length - 1 : Math.max(index - 1, 0)];
    else if (event.key === "Home") target = items[0];
    else if (event.key === "End") target = items[items.length - 1];
    else if (event.key === " " && index >= 0 && event.target.tagName === "A") {
      event.preventDefault(); // Space activates a link item as Enter does
      event.target.click();
      return;
    }
    if (target) {
      event.preventDefault();
      target.focus();
    }
  }
}

// Start every widget on the page -------------------------------------------------------------------

const clients = new Map();

/**
 * The page's client for a widget's configuration: one per ticket URL, shared by the page's widgets
 * (and, through the client, by the browser's tabs, with any other client of the site's).
 */
function clientFor(config) {
  if (!clients.has(config.ticketUrl)) {
    clients.set(config.ticketUrl, new NotificationsClient({ ticketUrl: config.ticketUrl, listUrl: config.listUrl }));
  }
  return clients.get(config.ticketUrl);
}

const widgets = new Map();

/** Start the widget of one `[data-ntf-widget]` element (once); returns it. */
export function init(root) {
  if (!widgets.has(root)) widgets.set(root, new Widget(root));
  return widgets.get(root);
}

export function initAll(scope = document) {
  return [...scope.querySelectorAll("[data-ntf-widget]")].map(init);
}

initAll();
