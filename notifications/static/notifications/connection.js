/**
 * One connection to the relay (docs/protocol.md), as the tab that holds it runs it: a ticket (or
 * the session cookie), `auth`, then on `welcome` the caller's subscriptions, `resume` from the
 * last cursor, and a `ping` whose `pong` says every answer before it has arrived: from then on the
 * connection is "connected". A heartbeat notices a connection that died without a close; a
 * dropped one is retried with exponential backoff and full jitter.
 *
 * When the socket fails to open `pollAfter` times in a row (a proxy refusing the upgrade, a relay
 * out of reach) while the HTTP API answers, the state becomes "polling": the feed is polled
 * (poller.js) while the socket is still tried in the background, and polling stops once it opens.
 *
 * States: connecting → connected; reconnecting / polling after a drop; offline when the user is
 * not logged in any more (no point trying until they are); disconnected once stopped.
 */

import { backoffDelay } from "./backoff.js";
import { Poller } from "./poller.js";

const TRY_AGAIN_LATER = 1013; // the relay is overloaded: do not come straight back
const NO_PONG = 4000;
const AUTH_FAILED = 4001;
const SESSION_ENDED = 4003;
const READY_REF = "ready";
const HEARTBEAT_PREFIX = "heartbeat-";

export class Connection {
  /**
   * @param {{getTicket: () => Promise<{url: string, ticket?: string}>, heartbeatMs: number,
   *          pongTimeoutMs: number, pollAfter: number, poll: object | null}} options
   *   `poll`: the Poller's options, or null for no polling fallback.
   * @param {{frame: (frame: object) => void, state: (state: string, detail: object) => void,
   *          cursor: () => (string | null), lastEventId: () => number}} hooks
   *   `frame` gets every frame but the connection's own pongs, the poller's included; on
   *   `welcome` it may send its subscriptions (send()) before `resume` goes out.
   */
  constructor(options, hooks) {
    this.options = options;
    this.hooks = hooks;
    this.state = "disconnected";
    this.socket = null;
    this.welcomed = false;
    this.stopped = true;
    this.attempt = 0; // backoff step
    this.failures = 0; // sockets in a row that never opened
    this.attemptId = 0;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.pongTimer = null;
    this.awaitingPong = null;
    this.pingCount = 0;
    this.poller = options.poll
      ? new Poller(options.poll, {
          frame: (frame) => hooks.frame(frame),
          lastEventId: () => hooks.lastEventId(),
          unauthorized: (error) => this.goOffline(AUTH_FAILED, error.message),
        })
      : null;
  }

  /** Start connecting; `initial` is the state shown meanwhile ("connecting" or "reconnecting"). */
  start(initial = "connecting") {
    this.stopped = false;
    this.attempt = 0;
    this.failures = 0;
    this.setState(initial);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.attemptId += 1;
    if (this.poller) this.poller.stop();
    this.dropSocket(1000, "Leaving the page.");
    this.setState("disconnected");
  }

  /** Try again now (the browser is back online, or the user asked): unless connected already. */
  retryNow() {
    if (this.stopped || this.socket || this.state === "connected") return;
    this.attempt = 0;
    if (this.state !== "polling") this.setState("reconnecting");
    this.connect();
  }

  /** True once the relay welcomed the current socket: frames sent now are answered. */
  isOpen() {
    return this.welcomed && this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Send a frame on the current socket; false when there is none open. */
  send(frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  setState(state, detail = {}) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.hooks.state(state, { previous, ...detail });
  }

  async connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const id = ++this.attemptId;
    let ticket;
    try {
      ticket = await this.options.getTicket();
    } catch (error) {
      if (id !== this.attemptId || this.stopped) return;
      if (error.status === 401 || error.status === 403) this.goOffline(AUTH_FAILED, error.message);
      else this.scheduleReconnect(0, error.message);
      return;
    }
    if (id !== this.attemptId || this.stopped) return;
    let socket;
    try {
      socket = new WebSocket(ticket.url);
    } catch {
      this.goOffline(0, `Not a WebSocket URL: ${ticket.url}`); // a configuration error: retrying will not help
      return;
    }
    let opened = false;
    this.socket = socket;
    this.welcomed = false;
    socket.addEventListener("open", () => {
      opened = true;
      // A cookie may have authenticated the socket already; the relay then answers the ticket
      // with an "Already authenticated." error, which changes nothing.
      if (ticket.ticket) this.send({ type: "auth", token: ticket.ticket });
    });
    socket.addEventListener("message", (message) => this.onMessage(socket, message.data));
    socket.addEventListener("close", (close) => this.onClose(socket, close.code, close.reason, opened));
  }

  onMessage(socket, data) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    if (frame.type === "welcome") {
      const cursor = this.hooks.cursor(); // read before the frame moves it to the welcome's
      this.welcomed = true;
      this.resumed = Boolean(cursor);
      this.resynced = false;
      this.hooks.frame(frame); // the caller subscribes here
      if (cursor) this.send({ type: "resume", cursor });
      // The relay answers frames in order: this pong comes after every answer to the
      // subscription and to `resume`, so "connected" means live on every topic.
      this.send({ type: "ping", ref: READY_REF });
      return;
    }
    if (frame.type === "pong" && frame.ref === READY_REF) {
      this.onReady();
      return;
    }
    if (frame.type === "pong" && typeof frame.ref === "string" && frame.ref.startsWith(HEARTBEAT_PREFIX)) {
      if (frame.ref === this.awaitingPong) {
        this.awaitingPong = null;
        clearTimeout(this.pongTimer);
      }
      return;
    }
    if (frame.type === "resync") this.resynced = true;
    this.hooks.frame(frame);
  }

  onReady() {
    this.attempt = 0; // a good connection: the next failure starts the backoff afresh
    this.failures = 0;
    if (this.poller) this.poller.stop();
    this.startHeartbeat();
    this.setState("connected", { resumed: this.resumed, resynced: this.resynced });
  }

  startHeartbeat() {
    this.stopHeartbeat();
    // A connection that died without a close (a sleeping laptop, a dropped NAT entry) is noticed
    // within heartbeatMs + pongTimeoutMs instead of never.
    this.heartbeatTimer = setInterval(() => {
      const socket = this.socket;
      if (!socket || this.awaitingPong) return;
      this.awaitingPong = `${HEARTBEAT_PREFIX}${++this.pingCount}`;
      this.send({ type: "ping", ref: this.awaitingPong });
      this.pongTimer = setTimeout(() => {
        if (this.socket === socket) this.dropSocket(NO_PONG, "No answer to ping.", true);
      }, this.options.pongTimeoutMs);
    }, this.options.heartbeatMs);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pongTimer);
    this.awaitingPong = null;
  }

  /** Close the current socket and forget it; reconnect if `reconnect`. */
  dropSocket(code, reason, reconnect = false) {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    this.welcomed = false;
    this.stopHeartbeat();
    try {
      socket.close(code, reason);
    } catch {
      // already closing
    }
    if (reconnect) this.afterClose(1006, reason, true);
  }

  onClose(socket, code, reason, opened) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.welcomed = false;
    this.stopHeartbeat();
    this.afterClose(code, reason, opened);
  }

  afterClose(code, reason, opened) {
    if (this.stopped) return;
    if (code === AUTH_FAILED || code === SESSION_ENDED) {
      this.goOffline(code, reason);
      return;
    }
    if (!opened) this.failures += 1;
    if (code === TRY_AGAIN_LATER) this.attempt = Math.max(this.attempt, 3); // seconds, not at once
    if (this.poller && this.failures >= this.options.pollAfter && this.state !== "polling") {
      this.setState("polling", { code, reason });
      this.poller.start();
    }
    this.scheduleReconnect(code, reason);
  }

  scheduleReconnect(code, reason) {
    if (this.stopped) return;
    if (this.state !== "polling") this.setState("reconnecting", { code, reason });
    clearTimeout(this.retryTimer);
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Logged out, or the session ended: no point reconnecting until the user comes back. */
  goOffline(code, reason) {
    clearTimeout(this.retryTimer);
    this.attemptId += 1; // a connection attempt under way is abandoned
    if (this.poller) this.poller.stop();
    this.dropSocket(1000, "Offline.");
    this.setState("offline", { code, reason });
  }
}
