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
 */

import { Connection } from "./connection.js";

/** Whether a tab following `topics` wants a frame on `topic` (model:* covers every model). */
export function wants(topics, topic) {
  return topic === "inbox" || topics.has(topic) || (topic.startsWith("model:") && topics.has("model:*"));
}

/** A tab as it introduced itself ({kind: "tab"}): its topics and focus. */
export function toMember(info) {
  return { topics: new Set(info.topics), focused: Boolean(info.focused), since: Number(info.since) || 0 };
}

/**
 * Record a tab's subscribe or unsubscribe in `members`. Every tab does, not only the leader: the
 * tab that takes over next must know the topics of all the others before its socket resumes.
 */
export function applyCommand(members, { tab, command, topics }) {
  if (!Array.isArray(topics) || (command !== "subscribe" && command !== "unsubscribe")) return;
  if (!members.has(tab)) members.set(tab, { topics: new Set(), focused: false, since: 0 });
  const member = members.get(tab);
  topics.forEach((topic) => (command === "subscribe" ? member.topics.add(topic) : member.topics.delete(topic)));
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
    this.connection.stop();
  }

  post(message) {
    this.group.post({ ...message, leader: this.client.tabId });
  }

  // What the tabs say ------------------------------------------------------------------------------

  /** A tab (re)introduced itself: its topics and focus. It learns the current state in return. */
  onTab(info) {
    const known = this.members.get(info.tab);
    this.members.set(info.tab, toMember(info));
    this.followMissing();
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
  }

  /** {tab, command: "subscribe" | "unsubscribe" | "retry", topics, ref} from a tab, this one included. */
  onCommand({ tab, command, topics, ref }) {
    if (command === "retry") {
      this.connection.retryNow();
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
    }
  }

  /**
   * Send a subscribe/unsubscribe and a ping after it: its pong closes the answers to it. The
   * subscription sent on `welcome` goes without: a ping there would start live delivery before
   * `resume` (the relay holds live events until any command but `subscribe`), and the
   * connection's own ping after `resume` closes it (complete()).
   */
  request(type, topics, waiters, { ping = true } = {}) {
    topics.forEach((topic) => (type === "subscribe" ? this.followed.add(topic) : this.followed.delete(topic)));
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
      const topics = new Set();
      this.members.forEach((member) => member.topics.forEach((topic) => topic !== "inbox" && topics.add(topic)));
      // Requests the last socket took with it are answered by this one's subscription.
      const waiters = [...this.welcomeWaiters, ...[...this.routes.values()].flatMap((route) => route.waiters)];
      this.welcomeWaiters = [];
      this.routes.clear();
      if (topics.size) this.welcomeRef = this.request("subscribe", [...topics], waiters, { ping: false });
      else waiters.forEach((waiter) => this.reply(waiter, { topics: [], errors: [] }));
    }
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
