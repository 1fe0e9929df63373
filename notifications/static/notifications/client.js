/**
 * The headless client of the notifications relay: the connection without any interface, for the
 * widget, single-page apps and anything else that runs in a browser. An ES module with no build
 * step; its types are in client.d.ts beside it, its guide in docs/client.md.
 *
 *     import { NotificationsClient } from "/static/notifications/client.js";
 *     const client = new NotificationsClient({ ticketUrl: "/notifications/ws-ticket/", topics: ["model:*"] });
 *     client.on("event", ({ event, topic }) => console.log(topic, event.title));
 *     client.connect();
 *
 * - Authentication: a ticket from `ticketUrl` (or from `getTicket()`, for sites that get it with
 *   a token of their own) sent as the first message, or the session cookie alone (`url`).
 * - After any reconnection it sends `resume` with the last cursor it saw, so nothing is missed or
 *   repeated; a `resync` answer (and every reconnection) tells the page to reload its state.
 * - One socket per browser: the tabs of a site elect a leader (tabs.js, leader.js) that holds the
 *   connection and relays what it receives to the others, cursors included; when its tab closes,
 *   another takes over and resumes from the cursor it kept. Each tab drops what it has seen
 *   already (by event id and topic), so a takeover repeats nothing on the page. The cursor lives
 *   in the tabs, not in storage: a tab opened when no other is starts afresh (its page loads the
 *   state over HTTP) instead of replaying what happened since some earlier visit.
 * - Where WebSockets are blocked it polls the HTTP API (state "polling") and returns to the
 *   socket as soon as it opens (connection.js, poller.js).
 * - Presence: `announce(topic, "viewing" | "editing" | null)` on an object topic the tab follows;
 *   the leader announces what the browser's tabs say together (editing wins; gone once no tab is
 *   there), again after every (re)connection, and each tab that announced itself gets `presence`
 *   events: who has that object open (presence.js).
 *
 * Everything arrives as DOM events on the client (an EventTarget; `on()` is a shorthand): state,
 * event, read, unread, resync, preferences, presence, welcome, subscribed, unsubscribed, error,
 * leader.
 */

import { BACKOFF_BASE_MS, BACKOFF_CAP_MS, backoffDelay } from "./backoff.js";
import { HttpError, requestJson } from "./http.js";
import { applyCommand, Leader, toMember, wants } from "./leader.js";
import { applyPresenceFrame, PRESENCE_STATES, presenceUsers } from "./presence.js";
import { canShare, TabGroup } from "./tabs.js";

export { BACKOFF_BASE_MS, BACKOFF_CAP_MS, backoffDelay, HttpError };

export const STATES = ["disconnected", "connecting", "connected", "reconnecting", "polling", "offline"];
export const EVENT_TYPES = ["state", "event", "read", "unread", "resync", "preferences", "presence", "welcome", "subscribed", "unsubscribed", "error", "leader"];

const DEFAULTS = {
  topics: [],
  share: true,
  key: "",
  pollAfter: 3,
  pollInterval: 5000,
  maxPollInterval: 60000,
  heartbeatMs: 30000,
  pongTimeoutMs: 10000,
  lifecycle: true,
};
const SEEN_LIMIT = 2000; // event ids × topics remembered to drop repeats

function isEvent(event) {
  return event !== null && typeof event === "object" && Number.isInteger(event.id) && typeof event.title === "string";
}

function randomId() {
  if (typeof crypto !== "undefined" && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** A list of topic names from `topics` (an array, or one string of names separated by spaces or commas). */
function topicList(topics, what) {
  const list = typeof topics === "string" ? topics.split(/[\s,]+/).filter(Boolean) : topics;
  if (!Array.isArray(list) || list.some((topic) => typeof topic !== "string" || !topic)) {
    throw new TypeError(`${what}: topics must be an array of non-empty strings, e.g. ["model:auth.user"].`);
  }
  return [...new Set(list)];
}

function checkOptions(options) {
  if (options === null || typeof options !== "object") throw new TypeError("NotificationsClient: options must be an object.");
  const given = ["ticketUrl", "getTicket", "url"].filter((name) => options[name] !== undefined);
  if (!given.length) {
    throw new TypeError("NotificationsClient: give ticketUrl (ticket authentication), getTicket() (a ticket you fetch yourself) or url (the relay's ws:// URL, session cookie authentication).");
  }
  if (options.getTicket !== undefined && typeof options.getTicket !== "function") throw new TypeError("NotificationsClient: getTicket must be a function returning a promise of {ticket, url}.");
  for (const name of ["ticketUrl", "url", "listUrl", "key"]) {
    if (options[name] !== undefined && typeof options[name] !== "string") throw new TypeError(`NotificationsClient: ${name} must be a string.`);
  }
  if (options.url !== undefined && !/^wss?:\/\//i.test(options.url)) throw new TypeError(`NotificationsClient: url must be a ws:// or wss:// URL, not ${JSON.stringify(options.url)}.`);
  for (const name of ["pollAfter", "pollInterval", "maxPollInterval", "heartbeatMs", "pongTimeoutMs"]) {
    if (options[name] !== undefined && !(Number.isFinite(options[name]) && options[name] > 0)) throw new TypeError(`NotificationsClient: ${name} must be a positive number.`);
  }
}

/** The ticket (or, in cookie mode, just the URL) for one connection attempt. */
function ticketSource(options) {
  if (options.getTicket) {
    return async () => {
      const ticket = await options.getTicket();
      if (!ticket || typeof ticket.url !== "string") throw new TypeError("getTicket() must resolve to {ticket, url}.");
      return ticket;
    };
  }
  if (options.ticketUrl) {
    return async () => {
      const answer = await requestJson(options.ticketUrl);
      if (!answer || typeof answer.url !== "string" || typeof answer.ticket !== "string") throw new HttpError(502, "The ticket endpoint answered without {ticket, url}.");
      return options.url ? { ...answer, url: options.url } : answer;
    };
  }
  return async () => ({ url: options.url });
}

export class NotificationsClient extends EventTarget {
  /** @param {import("./client").ClientOptions} options */
  constructor(options) {
    super();
    checkOptions(options);
    this.options = { ...DEFAULTS, ...options };
    this.state = "disconnected";
    this.cursor = null;
    this.user = null;
    this.lastEventId = 0;
    this.tabId = randomId();
    this.topicCounts = new Map(); // topic → how many subscribe() calls want it
    for (const topic of topicList(this.options.topics, "NotificationsClient")) this.topicCounts.set(topic, 1);
    this.seen = new Set();
    this.announced = new Map(); // object topic → "viewing" | "editing": this tab's presence
    this.presences = new Map(); // topic → Map(socket key → {user, state}): who is there, per the relay
    this.pending = new Map(); // ref → {resolve, command, topics}
    this.nextRef = 1;
    this.leader = null;
    this.group = null;
    // The other tabs of the group and their topics, kept by every tab (from their "tab", "command"
    // and "bye" messages) so that the one taking over subscribes to all of them before resuming.
    this.members = new Map();
    this.leaderTab = null; // the tab whose socket this one follows
    this.started = false;
    this.focusSince = Date.now();
    this.welcomeCursor = null;
    this.eventsSinceWelcome = 0;
    this.groupName = `notifications:${this.options.key || this.options.ticketUrl || this.options.url || "relay"}`;
    this.bindFocus();
    if (this.options.lifecycle) this.bindLifecycle();
  }

  /** Whether this tab holds the connection for the browser. */
  get isLeader() {
    return this.leader !== null;
  }

  /** Listen to one of EVENT_TYPES; returns the function that stops listening. */
  on(type, listener) {
    if (!EVENT_TYPES.includes(type)) throw new TypeError(`Unknown event "${type}"; one of: ${EVENT_TYPES.join(", ")}.`);
    const handler = (event) => listener(event.detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Open the connection (or join the tab that holds it). */
  connect() {
    if (this.started) return this;
    this.started = true;
    this.members.clear();
    this.applyState("connecting", {});
    if (this.options.share && canShare()) {
      this.group = new TabGroup(this.groupName, { lead: () => this.lead(), message: (message) => this.onMessage(message) });
      this.group.start();
      this.introduce();
      this.resendPending();
    } else {
      this.group = { post() {}, stop() {} };
      this.lead();
    }
    return this;
  }

  /** Close the connection (the next tab takes it over); connect() starts again. */
  disconnect() {
    if (!this.started) return this;
    this.started = false;
    this.group.post({ kind: "bye", tab: this.tabId });
    if (this.leader) this.leader.stop();
    this.leader = null;
    this.group.stop();
    this.group = null;
    this.applyState("disconnected", {});
    return this;
  }

  /** Reconnect now rather than at the backoff's next attempt (e.g. the user asked). */
  retry() {
    if (this.started) this.sendCommand({ command: "retry" });
  }

  /**
   * Follow more topics; resolves with the topics now followed and the relay's errors for the
   * refused ones, once it has answered (or at the next connection).
   */
  subscribe(topics) {
    const list = topicList(topics, "subscribe()");
    for (const topic of list) this.topicCounts.set(topic, (this.topicCounts.get(topic) || 0) + 1);
    return this.command("subscribe", list);
  }

  /** Stop following topics (once every subscribe() of them in this tab is undone). */
  unsubscribe(topics) {
    const list = topicList(topics, "unsubscribe()");
    const gone = [];
    for (const topic of list) {
      const count = (this.topicCounts.get(topic) || 0) - 1;
      if (count > 0) this.topicCounts.set(topic, count);
      else if (this.topicCounts.delete(topic)) gone.push(topic);
    }
    if (!gone.length) return Promise.resolve({ topics: [], errors: [] });
    gone.forEach((topic) => this.announced.delete(topic)); // the relay drops the entry with the topic
    return this.command("unsubscribe", gone);
  }

  /**
   * Say that this tab shows the object of `topic` ("viewing"), that its user changes it
   * ("editing"), or that it is gone from it (null). The topic is an object: topic this tab
   * subscribed to. From then on, `presence` events tell who has the object open (the user's own
   * entries included: leave out `user.id` to show who else is there).
   */
  announce(topic, state) {
    if (typeof topic !== "string" || !topic.startsWith("object:") || !this.topicCounts.has(topic)) {
      throw new TypeError(`announce(): ${JSON.stringify(topic)} is not an object: topic this tab subscribed to; subscribe() to it first.`);
    }
    if (state !== null && !PRESENCE_STATES.includes(state)) {
      throw new TypeError(`announce(): state must be "viewing", "editing" or null (gone), not ${JSON.stringify(state)}.`);
    }
    if ((this.announced.get(topic) || null) === state) return;
    if (state === null) this.announced.delete(topic);
    else this.announced.set(topic, state);
    if (this.started) this.sendCommand({ command: "presence", topic, state });
  }

  topicSet() {
    return new Set(["inbox", ...this.topicCounts.keys()]);
  }

  command(command, topics) {
    const ref = this.nextRef++;
    return new Promise((resolve) => {
      this.pending.set(ref, { resolve, command, topics });
      if (this.started) this.sendCommand({ command, topics, ref });
    });
  }

  sendCommand(message) {
    const full = { ...message, tab: this.tabId };
    if (this.leader) this.leader.onCommand(full);
    else if (this.group) this.group.post({ kind: "command", ...full });
  }

  /** Commands not answered yet go to the (new) leader: a leader that left took them along. */
  resendPending() {
    this.pending.forEach((pending, ref) => this.sendCommand({ command: pending.command, topics: pending.topics, ref }));
  }

  onReply(ref, result) {
    const pending = this.pending.get(ref);
    if (!pending) return;
    this.pending.delete(ref);
    pending.resolve(result);
  }

  // Tabs --------------------------------------------------------------------------------------------

  /** What the leader needs to know about this tab: the topics it follows and whether it is focused. */
  tabInfo() {
    const focused = typeof document !== "undefined" && !document.hidden && document.hasFocus();
    return { tab: this.tabId, topics: [...this.topicSet()], presence: Object.fromEntries(this.announced), focused, since: this.focusSince };
  }

  introduce() {
    this.group.post({ kind: "tab", ...this.tabInfo() });
  }

  /** This tab holds the lock now: open the connection, from the cursor it kept. */
  lead() {
    if (!this.started) return;
    this.members.delete(this.leaderTab); // the lock is free: its holder is gone
    this.leader = new Leader(this, this.group, this.connectionOptions());
    this.leader.start(this.cursor ? "reconnecting" : "connecting");
    this.resendPending();
    this.emit("leader", { leader: true });
  }

  connectionOptions() {
    const { pollAfter, pollInterval, maxPollInterval, heartbeatMs, pongTimeoutMs, listUrl } = this.options;
    const poll = listUrl ? { listUrl, interval: pollInterval, maxInterval: maxPollInterval, request: requestJson } : null;
    return { getTicket: ticketSource(this.options), heartbeatMs, pongTimeoutMs, pollAfter, poll };
  }

  onMessage(message) {
    if (this.leader) {
      if (message.kind === "tab") this.leader.onTab(message);
      else if (message.kind === "command") this.leader.onCommand(message);
      else if (message.kind === "bye") this.leader.onBye(message.tab);
      return; // anything else comes from a leader that is leaving: this tab has the socket now
    }
    if (typeof message.leader === "string") this.leaderTab = message.leader;
    switch (message.kind) {
      case "tab": {
        // A tab new to this one learns this one's topics in return.
        const known = this.members.has(message.tab);
        this.members.set(message.tab, toMember(message));
        if (!known) this.introduce();
        break;
      }
      case "command":
        applyCommand(this.members, message);
        break;
      case "bye":
        this.members.delete(message.tab);
        break;
      case "leader":
        // A new leader knows nothing of this tab: its topics, its focus, what it waits for.
        this.introduce();
        this.resendPending();
        break;
      case "state":
        if (typeof message.cursor === "string" && !this.cursor) this.cursor = message.cursor;
        if (message.user) this.user = message.user;
        this.applyState(message.state, message.detail || {});
        break;
      case "frame":
        this.receive(message.frame, { presenter: message.presenter, desktop: message.desktop, relayed: true });
        break;
      case "reply":
        if (message.tab === this.tabId) this.onReply(message.ref, message.result);
        break;
      default:
        break;
    }
  }

  /** The leader picks the tab that shows an event by focus: keep it informed. */
  bindFocus() {
    const report = () => {
      if (!document.hidden && document.hasFocus()) this.focusSince = Date.now();
      if (this.started && !this.leader && this.group) this.introduce();
    };
    window.addEventListener("focus", report);
    window.addEventListener("blur", report);
    document.addEventListener("visibilitychange", report);
  }

  bindLifecycle() {
    // Leaving the page hands the connection over (and lets the browser keep the page in its
    // back/forward cache); coming back joins again, and the page reloads its state.
    let wasStarted = false;
    window.addEventListener("pagehide", () => {
      wasStarted = this.started;
      this.disconnect();
    });
    window.addEventListener("pageshow", (event) => {
      if (event.persisted && wasStarted) this.connect();
    });
    window.addEventListener("online", () => this.retry());
  }

  // Frames -------------------------------------------------------------------------------------------

  /**
   * A frame from this tab's socket or poller (through the leader), or relayed from the leader's
   * tab. `presenter` names the tab that shows an event; `relayed` frames may repeat what a
   * takeover's replay brought, so their cursor is taken only when the event is new here.
   */
  receive(frame, { presenter = this.tabId, desktop = false, relayed = false } = {}) {
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "welcome":
        this.user = frame.user || null;
        this.welcomeCursor = typeof frame.cursor === "string" ? frame.cursor : null;
        this.eventsSinceWelcome = 0;
        if (!this.cursor && this.welcomeCursor) this.cursor = this.welcomeCursor;
        this.emit("welcome", { user: this.user, topics: Array.isArray(frame.topics) ? frame.topics : [] });
        break;
      case "event": {
        if (!isEvent(frame.event) || typeof frame.topic !== "string") return;
        const key = `${frame.event.id} ${frame.topic}`;
        const fresh = !this.seen.has(key);
        if (typeof frame.cursor === "string" && (fresh || !relayed)) this.cursor = frame.cursor;
        this.eventsSinceWelcome += 1;
        if (!fresh) return;
        this.remember(key);
        this.lastEventId = Math.max(this.lastEventId, frame.event.id);
        if (!wants(this.topicSet(), frame.topic)) return;
        this.emit("event", {
          event: frame.event,
          topic: frame.topic,
          cursor: typeof frame.cursor === "string" ? frame.cursor : null,
          present: presenter === this.tabId,
          desktop: Boolean(desktop),
          // The user muted what this event is about: list it, never interrupt them with it.
          muted: frame.muted === true,
        });
        break;
      }
      case "read":
        if (!Number.isInteger(frame.unread_count)) return;
        this.emit("read", {
          topic: frame.topic,
          ids: Array.isArray(frame.ids) ? frame.ids.filter(Number.isInteger) : null,
          up_to: Number.isInteger(frame.up_to) ? frame.up_to : null,
          unread_count: frame.unread_count,
          latest: Number.isInteger(frame.latest) ? frame.latest : null,
        });
        break;
      case "unread":
        if (Number.isInteger(frame.unread_count)) this.emit("unread", { unread_count: frame.unread_count });
        break;
      case "preferences":
        // The user changed their preferences (in some tab, on some device): they apply from now.
        if (frame.preferences !== null && typeof frame.preferences === "object") this.emit("preferences", { preferences: frame.preferences });
        break;
      case "resync":
        // Nothing arrived since the welcome: live delivery starts there, and so does the cursor.
        if (this.eventsSinceWelcome === 0 && this.welcomeCursor) this.cursor = this.welcomeCursor;
        this.emit("resync", {});
        break;
      case "presence_state":
      case "presence_diff":
        if (typeof frame.topic !== "string") return;
        this.presences.set(frame.topic, applyPresenceFrame(this.presences.get(frame.topic), frame));
        this.emitPresence(frame.topic);
        break;
      case "unsubscribed":
        // The relay drops presence with the topic (a revoked permission, too): nobody is known there.
        if (Array.isArray(frame.topics)) frame.topics.forEach((topic) => this.presences.delete(topic) && this.emitPresence(topic));
        this.emit(frame.type, frame);
        break;
      case "subscribed":
      case "error":
        this.emit(frame.type, frame);
        break;
      default:
        break;
    }
  }

  /** Who has the object of `topic` open, for a tab that announced itself there. */
  emitPresence(topic) {
    if (this.announced.has(topic)) this.emit("presence", { topic, users: presenceUsers(this.presences.get(topic)) });
  }

  remember(key) {
    this.seen.add(key);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value);
  }

  applyState(state, detail) {
    if (!STATES.includes(state) || state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit("state", { ...detail, state, previous });
    if (state !== "connected") {
      // Presence is not replayed: without a socket, who is there is unknown until the next
      // connection announces again and gets a new snapshot.
      const known = [...this.presences.keys()];
      this.presences.clear();
      known.forEach((topic) => this.emitPresence(topic));
    }
  }
}
