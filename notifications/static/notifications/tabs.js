/**
 * The tabs of one site in one browser, as a group that elects one leader: the tab holding a Web
 * Lock (navigator.locks) named after the group leads, the others queue for it, and the browser
 * hands it to the next one when the leader's tab closes or crashes (a lock dies with its holder,
 * which a heartbeat scheme could only guess at). A BroadcastChannel of the same name carries the
 * messages between them: frames and states from the leader, commands and focus from the others.
 *
 * Where either API is missing, each tab is a group of its own and leads at once.
 */

export function canShare() {
  return (
    typeof BroadcastChannel === "function" &&
    typeof navigator !== "undefined" &&
    navigator.locks !== undefined &&
    typeof navigator.locks.request === "function"
  );
}

export class TabGroup {
  /**
   * @param {string} name  tabs that use the same name share one leader
   * @param {{lead: () => void, message: (message: object) => void}} handlers
   *   `lead` runs once this tab holds the lock; `message` gets what the other tabs post.
   */
  constructor(name, handlers) {
    this.name = name;
    this.handlers = handlers;
    this.channel = null;
    this.abort = null;
    this.release = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    if (!canShare()) {
      this.handlers.lead();
      return;
    }
    this.channel = new BroadcastChannel(this.name);
    this.channel.addEventListener("message", (message) => {
      if (!this.stopped && message.data && typeof message.data === "object") this.handlers.message(message.data);
    });
    this.abort = new AbortController();
    navigator.locks
      .request(this.name, { signal: this.abort.signal }, () => {
        if (this.stopped) return undefined; // granted as this tab was leaving: pass it on at once
        return new Promise((release) => {
          this.release = release;
          this.handlers.lead();
        });
      })
      .catch(() => {
        // aborted: this tab left the queue
      });
  }

  /** Send `message` to every other tab of the group (structured clone: plain data only). */
  post(message) {
    if (this.channel && !this.stopped) this.channel.postMessage(message);
  }

  /** Leave the group: the lock (held or awaited) goes to the next tab. */
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    if (this.abort) this.abort.abort();
    if (this.release) this.release();
    if (this.channel) this.channel.close();
    this.channel = null;
    this.abort = null;
    this.release = null;
  }
}
