/**
 * What the tab holding the connection does for every tab of the browser, itself included: it
 * follows the union of the topics the tabs want, answers each tab's subscribe and unsubscribe,
 * relays every frame and state change to the others, and picks the one tab that shows each event
 * (the focused tab; or, when no tab is focused, this one, with a desktop notification).
 *
 * Messages it posts: {kind: "leader"} on taking over, {kind: "state"}, {kind: "frame"} and
 * {kind: "reply"}; it handles the others' {kind: "tab"} (topics and focus), {kind: "command"}
 * and {kind: "bye"} (client.js). The followers record those too (client.members), so the tab that
 * takes over starts with every tab's topics and subscribes to them before it resumes.
 *
 * Presence: the socket announces, per object topic, what the tabs say together (mergedPresence:
 * editing wins, null once no tab is there), right after its subscription on every welcome (the
 * relay keeps no presence across sockets). A tab that starts announcing itself on a topic gets
 * the snapshot this tab holds ({kind: "frame"}, a `presence_state`): the relay sends one only
 * to a socket's first announcement there. An announcement refused as `rate_limited` is made
 * again a second later.
 */

import { Connection } from "./connection.js";
import { mergedPresence, PRESENCE_STATES } from "./presence.js";

const PRESENCE_RETRY_MS = 1100; // the relay allows one announcement a second after a burst

/** Whether a tab following `topics` wants a frame on `topic` (model:* covers every model). */
export function wants(topics, topic) {
  return topic === "inbox" || topics.has(topic) || (topic.startsWith("model:") && topics.has("model:*"));
}

/** A tab as it introduced itself ({kind: "tab"}): its topics, presence and focus. */
export function toMember(info) {
  const presence = new Map(Object.entries(info.presence || {}).filter(([, state]) => PRESENCE_STATES.includes(state)));
  return { topics: new Set(info.topics), presence, focused: Boolean(info.focused), since: Number(info.since) || 0 };
}

/**
 * Record a tab's subscribe, unsubscribe or presence in `members`. Every tab does, not only the
 * leader: the tab that takes over next must know the topics and presence of all the others
 * before its socket resumes.
 */
export function applyCommand(members, { tab, command, topics, topic, state }) {
  const presence = command === "presence" && typeof topic === "string" && (state === null || PRESENCE_STATES.includes(state));
  if (!presence && (!Array.isArray(topics) || (command !== "subscribe" && command !== "unsubscribe"))) return;
  if (!members.has(tab)) members.set(tab, toMember({ topics: [] }));
  const member = members.get(tab);
  if (presence) {
    if (state === null) member.presence.delete(topic);
    else member.presence.set(topic, state);
    return;
  }
  topics.forEach((name) => {
    if (command === "subscribe") {
      member.topics.add(name);
    } else {
      member.topics.delete(name);
      member.presence.delete(name);
    }
  });
}

export class Leader {
  /**
   * @param {import("./client.js").NotificationsClient} client  this tab's client
   * @param {{post: (message: object) => void}} group  the channel to the other tabs
   * @param {object} options  the Connection's options
   */
  constructor(client, group, options) {
    this.client = client;
    this.group = group;
    this.members = client.members; // tab id → {topics: Set, focused, since}, kept while following
    this.routes = new Map(); // ref of a frame sent → {waiters: [{tab, ref, topics}], topics: Set, errors: []}
    this.welcomeWaiters = []; // subscriptions asked for while no socket was open
    this.followed = new Set(); // topics the current socket was asked to follow
    this.nextRef = 1;
    this.stopping = false;
    this.welcomeRef = null; // the subscription sent on the last welcome
    this.announced = new Map(); // topic → the state the current socket announced there
    this.announcing = new Map(); // ref of a presence sent → {topic, state, previous}
    this.presenceRetry = null;
    this.connection = new Connection(options, {
      frame: (frame) => this.onFrame(frame),
      state: (state, detail) => this.onState(state, detail),
      cursor: () => client.cursor,
      lastEventId: () => client.lastEventId,
    });
  }

  start(initial) {
    this.members.set(this.client.tabId, toMember(this.client.tabInfo()));
    this.post({ kind: "leader" });
    this.connection.start(initial);
  }

  /** Close the socket; the tab is leaving, and the next leader tells the others its state. */
  stop() {
    this.stopping = true;
    clearTimeout(this.presenceRetry);
    this.connection.stop();
  }

  post(message) {
    this.group.post({ ...message, leader: this.client.tabId });
  }

  // What the tabs say ------------------------------------------------------------------------------

  /** A tab (re)introduced itself: its topics and focus. It learns the current state in return. */
  onTab(info) {
    const known = this.members.get(info.tab);
    const member = toMember(info);
    this.members.set(info.tab, member);
    this.followMissing();
    this.syncPresence([...member.presence.keys()].filter((topic) => !(known && known.presence.has(topic))));
    if (!known) this.post({ kind: "state", state: this.connection.state, detail: {}, cursor: this.client.cursor, user: this.client.user });
  }

  /** Topics some tab follows that the socket does not (a tab that introduced itself late). */
  followMissing() {
    if (!this.connection.isOpen()) return;
    const missing = new Set();
    this.members.forEach((member) => member.topics.forEach((topic) => topic !== "inbox" && !this.followed.has(topic) && missing.add(topic)));
    if (missing.size) this.request("subscribe", [...missing], []);
  }

  onBye(tab) {
    this.members.delete(tab);
    this.syncPresence();
  }

  /**
   * {tab, command: "subscribe" | "unsubscribe" | "retry", topics, ref} or {tab, command:
   * "presence", topic, state} from a tab, this one included.
   */
  onCommand(message) {
    const { tab, command, topics, ref } = message;
    if (command === "retry") {
      this.connection.retryNow();
      return;
    }
    if (command === "presence") {
      const before = this.members.has(tab) && this.members.get(tab).presence.has(message.topic);
      applyCommand(this.members, message);
      this.syncPresence(!before && message.state !== null ? [message.topic] : []);
      return;
    }
    if (!Array.isArray(topics)) return;
    applyCommand(this.members, { tab, command, topics });
    const waiter = { tab, ref, topics };
    if (command === "subscribe") {
      if (this.connection.isOpen()) this.request("subscribe", topics, [waiter]);
      else this.welcomeWaiters.push(waiter); // the next welcome subscribes to every tab's topics
    } else if (command === "unsubscribe") {
      const unwanted = topics.filter((topic) => ![...this.members.values()].some((other) => other.topics.has(topic)));
      if (unwanted.length && this.connection.isOpen()) this.request("unsubscribe", unwanted, [waiter]);
      else this.reply(waiter, { topics, errors: [] }); // another tab still follows them, or no socket
      this.syncPresence();
    }
  }

  /**
   * Announce on the socket what the tabs now say together, where it differs from what it
   * announced. `joined`: topics a tab has just announced itself on, which get the snapshot this
   * tab holds (none yet if the socket is only now announcing there: the relay's follows).
   */
  syncPresence(joined = []) {
    joined.forEach((topic) => {
      if (!this.announced.has(topic)) this.client.presences.delete(topic);
      const frame = { type: "presence_state", topic, presences: Object.fromEntries(this.client.presences.get(topic) || []) };
      this.client.receive(frame);
      this.post({ kind: "frame", frame });
    });
    if (!this.connection.isOpen()) return; // the next welcome announces
    const wanted = mergedPresence(this.members);
    new Set([...wanted.keys(), ...this.announced.keys()]).forEach((topic) => {
      const state = wanted.get(topic) || null;
      const previous = this.announced.get(topic) || null;
      if (state === previous) return;
      if (state === null) this.announced.delete(topic);
      else this.announced.set(topic, state);
      const ref = `presence-${this.nextRef++}`;
      this.announcing.set(ref, { topic, state, previous });
      this.connection.send({ type: "presence", topic, state, ref });
    });
  }

  /** The relay answered a presence command: refused for its rate, it is made again shortly. */
  onAnnounced(frame) {
    const sent = this.announcing.get(frame.ref);
    this.announcing.delete(frame.ref);
    if (frame.type !== "error" || frame.code !== "rate_limited") return;
    if ((this.announced.get(sent.topic) || null) === sent.state) {
      if (sent.previous === null) this.announced.delete(sent.topic);
      else this.announced.set(sent.topic, sent.previous);
    }
    clearTimeout(this.presenceRetry);
    this.presenceRetry = setTimeout(() => this.syncPresence(), PRESENCE_RETRY_MS);
  }

  /**
   * Send a subscribe/unsubscribe and a ping after it: its pong closes the answers to it. The
   * subscription sent on `welcome` goes without: a ping there would start live delivery before
   * `resume` (the relay holds live events until any command but `subscribe`), and the
   * connection's own ping after `resume` closes it (complete()).
   */
  request(type, topics, waiters, { ping = true } = {}) {
    topics.forEach((topic) => {
      if (type === "subscribe") {
        this.followed.add(topic);
      } else {
        this.followed.delete(topic);
        this.announced.delete(topic); // the relay drops the socket's presence with the topic
      }
    });
    const ref = `${type}-${this.nextRef++}`;
    this.routes.set(ref, { waiters, topics: new Set(), errors: [] });
    this.connection.send({ type, topics, ref });
    if (ping) this.connection.send({ type: "ping", ref });
    return ref;
  }

  /** The answers to request `ref` are all in: tell the tabs that asked. */
  complete(ref) {
    const route = this.routes.get(ref);
    if (!route) return;
    this.routes.delete(ref);
    route.waiters.forEach((waiter) => this.reply(waiter, { topics: [...route.topics], errors: route.errors }));
  }

  reply(waiter, result) {
    const topics = waiter.topics.filter((topic) => result.topics.includes(topic));
    const answer = { topics, errors: result.errors };
    if (waiter.tab === this.client.tabId) this.client.onReply(waiter.ref, answer);
    else this.post({ kind: "reply", tab: waiter.tab, ref: waiter.ref, result: answer });
  }

  // What the relay says ---------------------------------------------------------------------------

  onFrame(frame) {
    if (frame.type === "welcome") {
      this.followed = new Set();
      this.announced = new Map();
      this.announcing.clear();
      const topics = new Set();
      this.members.forEach((member) => member.topics.forEach((topic) => topic !== "inbox" && topics.add(topic)));
      // Requests the last socket took with it are answered by this one's subscription.
      const waiters = [...this.welcomeWaiters, ...[...this.routes.values()].flatMap((route) => route.waiters)];
      this.welcomeWaiters = [];
      this.routes.clear();
      if (topics.size) this.welcomeRef = this.request("subscribe", [...topics], waiters, { ping: false });
      else waiters.forEach((waiter) => this.reply(waiter, { topics: [], errors: [] }));
      this.syncPresence(); // after the subscription, before resume: presence commands do not start live delivery
    }
    if (this.announcing.has(frame.ref)) this.onAnnounced(frame);
    // The relay drops a socket's presence on the topics it no longer follows.
    if (frame.type === "unsubscribed" && Array.isArray(frame.topics)) frame.topics.forEach((topic) => this.announced.delete(topic));
    const route = typeof frame.ref === "string" ? this.routes.get(frame.ref) : undefined;
    if (route) {
      if (frame.type === "pong") {
        this.complete(frame.ref);
        return;
      }
      if (frame.type === "error") route.errors.push({ code: frame.code, message: frame.message });
      if (Array.isArray(frame.topics)) frame.topics.forEach((topic) => route.topics.add(topic));
    }
    if (frame.type === "pong") return;
    const meta = frame.type === "event" ? this.presenter(frame.topic) : {};
    this.client.receive(frame, meta);
    this.post({ kind: "frame", frame, ...meta });
  }

  /**
   * The tab that shows an event: among the tabs that follow its topic, this one if it is
   * focused, else the one focused most recently; when none is, this one with `desktop` set (a
   * desktop notification, if the user turned them on), or any tab that follows the topic.
   */
  presenter(topic) {
    this.members.set(this.client.tabId, toMember(this.client.tabInfo()));
    const following = [...this.members].filter(([, member]) => wants(member.topics, topic));
    const focused = following.filter(([, member]) => member.focused);
    if (focused.length) {
      const own = focused.find(([id]) => id === this.client.tabId);
      const latest = own || focused.reduce((best, entry) => (entry[1].since > best[1].since ? entry : best));
      return { presenter: latest[0], desktop: false };
    }
    const own = following.find(([id]) => id === this.client.tabId);
    const chosen = own || following[0];
    return { presenter: chosen ? chosen[0] : null, desktop: true };
  }

  onState(state, detail) {
    if (this.stopping) return;
    if (state === "connected") this.complete(this.welcomeRef);
    this.client.applyState(state, detail);
    this.post({ kind: "state", state, detail, cursor: this.client.cursor, user: this.client.user });
  }
}
