/**
 * The user's notification preferences as the page knows them: loaded from the HTTP API (GET
 * `/notifications/api/preferences/`), changed with PATCH (only the fields changed, so what the
 * user left to the site's defaults stays so), and kept current by the client's `preferences`
 * events (a change made in another tab or on another device). One per page, shared by its
 * widgets: they ask it whether to show toasts, the panel what to show.
 *
 * It dispatches `change` (detail: {mutesChanged}) whenever what applies may have changed.
 */

import { requestJson } from "./http.js";

export const FIELDS = ["toasts", "digest", "push", "language", "muted_kinds", "muted_topics"];

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function mutesOf(applied) {
  return applied ? [applied.muted_kinds, applied.muted_topics] : null;
}

export class PreferencesStore extends EventTarget {
  /** @param {{url: string, csrfToken: string}} options */
  constructor({ url, csrfToken }) {
    super();
    this.url = url;
    this.csrfToken = csrfToken;
    this.applied = null; // what applies now: the API's `preferences`, or a frame's
    this.chosen = null; // each field as the user set it, null = the site's default
    this.defaults = null;
    this.options = null; // {digest: [{value, label}], languages: [{code, name}]}
    this.loading = null;
    this.framesDuringLoad = null;
    this.clients = new Set();
  }

  /** Take the `preferences` events of `client` (once however many widgets share it). */
  follow(client) {
    if (this.clients.has(client)) return;
    this.clients.add(client);
    client.on("preferences", ({ preferences }) => this.applyFrame(preferences));
  }

  get loaded() {
    return this.chosen !== null;
  }

  /** Whether live toasts are on (until the preferences are known: yes, as they were before). */
  get toasts() {
    return !this.applied || this.applied.toasts !== false;
  }

  /** GET the preferences (one request at a time); resolves once they are known. */
  load() {
    if (!this.loading) {
      this.framesDuringLoad = [];
      this.loading = requestJson(this.url)
        .then((body) => {
          const frames = this.framesDuringLoad;
          this.take(body);
          // A frame is at least as new as the answer of a request made before it arrived.
          frames.forEach((applied) => this.applyFrame(applied));
        })
        .finally(() => {
          this.loading = null;
          this.framesDuringLoad = null;
        });
    }
    return this.loading;
  }

  /**
   * PATCH the fields of `changes`; resolves once the server took them. Rejects with the
   * HttpError (a 400's body: {"error": "invalid", "errors": {field: [message, ...]}}).
   */
  async save(changes) {
    const body = await requestJson(this.url, { method: "PATCH", json: changes, csrfToken: this.csrfToken });
    this.take(body);
  }

  /** The API's answer (GET, PUT, PATCH): {preferences, chosen, defaults, options}. */
  take(body) {
    if (!body || typeof body.preferences !== "object" || typeof body.chosen !== "object") throw new TypeError("The preferences endpoint answered without {preferences, chosen}.");
    const before = mutesOf(this.applied);
    this.applied = body.preferences;
    this.chosen = body.chosen;
    this.defaults = body.defaults || {};
    this.options = body.options || { digest: [], languages: [] };
    this.changed(before);
  }

  /**
   * A `preferences` frame: what applies now. A field left to the site's default that still
   * has the default's value stays "default"; any other took the value it shows.
   */
  applyFrame(applied) {
    if (this.framesDuringLoad) this.framesDuringLoad.push(applied);
    const before = mutesOf(this.applied);
    this.applied = { ...this.applied, ...applied };
    if (this.chosen) {
      const chosen = {};
      for (const field of FIELDS) {
        const kept = this.chosen[field] === null && same(this.applied[field], this.defaults[field]);
        chosen[field] = kept ? null : this.applied[field];
      }
      this.chosen = chosen;
    }
    this.changed(before);
  }

  changed(mutesBefore) {
    const mutesChanged = mutesBefore !== null && !same(mutesBefore, mutesOf(this.applied));
    this.dispatchEvent(new CustomEvent("change", { detail: { mutesChanged } }));
  }
}

const stores = new Map();

/** The page's store for a preferences URL (one per URL, whatever the number of widgets). */
export function preferencesFor(url, csrfToken) {
  if (!stores.has(url)) stores.set(url, new PreferencesStore({ url, csrfToken }));
  return stores.get(url);
}
