/**
 * Polling the HTTP API while WebSockets cannot be used (a proxy that refuses the upgrade, a relay
 * out of reach): the feed is read every few seconds, and what it shows that the client had not
 * seen comes out as the same `event` frames the relay would have sent, followed by an `unread`
 * frame with the server's count when anything changed (an entry the user muted comes out as
 * the relay would send it too, `"muted": true`). The pace slows down while nothing changes and backs off on
 * errors; the connection keeps trying the socket meanwhile and stops the poller once it opens.
 *
 * Polled events carry no cursor: the relay's replay on the next `resume` sends them again, and
 * the client drops them as already seen (by event id and topic).
 */

import { backoffDelay } from "./backoff.js";
import { requestJson } from "./http.js";

const PAGE_SIZE = 20;
const SLOWDOWN = 1.5; // each poll that finds nothing new waits this much longer, up to the maximum

function isObjectKind(kind) {
  return typeof kind === "string" && (kind.startsWith("admin.") || kind.startsWith("model."));
}

function isEvent(event) {
  return event !== null && typeof event === "object" && Number.isInteger(event.id) && typeof event.title === "string";
}

/** The topic a feed entry would have come on: its model's for object events, else the inbox. */
export function feedTopic(event) {
  if (isObjectKind(event.kind) && event.target && typeof event.target.type === "string") return `model:${event.target.type}`;
  return "inbox";
}

export class Poller {
  /**
   * @param {{listUrl: string, interval: number, maxInterval: number, request: typeof requestJson}} options
   * @param {{frame: (frame: object) => void, lastEventId: () => number, unauthorized: (error: Error) => void}} hooks
   */
  constructor(options, hooks) {
    this.options = options;
    this.hooks = hooks;
    this.running = false;
    this.generation = 0;
    this.timer = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.generation += 1;
    this.delay = this.options.interval;
    this.failures = 0;
    this.newest = 0;
    this.polled = false; // whether an answer came since start()
    this.lastCount = null;
    this.poll(this.generation);
  }

  stop() {
    this.running = false;
    this.generation += 1;
    clearTimeout(this.timer);
  }

  schedule(generation, delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poll(generation), delay);
  }

  async poll(generation) {
    const url = new URL(this.options.listUrl, window.location.href);
    url.searchParams.set("limit", String(PAGE_SIZE));
    let data;
    try {
      data = await this.options.request(url.href);
    } catch (error) {
      if (generation !== this.generation) return;
      if (error.status === 401 || error.status === 403) {
        this.stop();
        this.hooks.unauthorized(error);
        return;
      }
      this.schedule(generation, this.options.interval + backoffDelay(this.failures++, Math.random, this.options.interval, this.options.maxInterval));
      return;
    }
    if (generation !== this.generation) return;
    this.failures = 0;
    const results = (data && Array.isArray(data.results) ? data.results : []).filter(isEvent).sort((a, b) => a.id - b.id);
    const known = Math.max(this.hooks.lastEventId(), this.newest);
    // With nothing seen yet, the first answer is the starting point: the page loaded it already.
    // After it, everything newer is news, even when that first answer was an empty feed.
    const fresh = known || this.polled ? results.filter((event) => event.id > known && !event.read) : [];
    this.polled = true;
    for (const event of results) this.newest = Math.max(this.newest, event.id);
    for (const event of fresh) this.hooks.frame({ type: "event", topic: feedTopic(event), event, muted: event.muted === true });
    const count = data && Number.isInteger(data.unread_count) ? data.unread_count : null;
    const changed = fresh.length > 0 || count !== this.lastCount;
    if (count !== null && changed) this.hooks.frame({ type: "unread", unread_count: count });
    this.lastCount = count;
    this.delay = changed ? this.options.interval : Math.min(this.options.maxInterval, this.delay * SLOWDOWN);
    this.schedule(generation, this.delay);
  }
}
