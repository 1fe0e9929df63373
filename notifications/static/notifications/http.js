/**
 * JSON over HTTP, as the app's endpoints speak it (docs/protocol.md): every answer is JSON, errors
 * included, so a failure carries its status and the server's message. Shared by the client (the
 * ticket, polling) and the widget (the list, marking read).
 */

import { gettext as _ } from "./i18n.js";

export class HttpError extends Error {
  /**
   * @param {number} status  the HTTP status, or 0 when no answer came (network error)
   * @param {string} [message]
   * @param {unknown} [body]  the JSON the server answered, e.g. a 400's {"error", "errors"}
   */
  constructor(status, message, body = null) {
    super(message || (status ? `HTTP ${status}` : _("No answer from the server.")));
    this.name = "HttpError";
    this.status = status;
    this.body = body;
  }
}

/**
 * GET (or POST...) `url` and return its JSON body; throws HttpError when the status is not 2xx or
 * the server cannot be reached. Cookies go along for same-origin URLs (session authentication);
 * a CSRF token is sent on anything but GET; `json`, when given, is sent as the JSON body.
 *
 * @param {string} url
 * @param {{method?: string, csrfToken?: string, headers?: Record<string, string>, keepalive?: boolean, credentials?: RequestCredentials, json?: unknown, signal?: AbortSignal}} [options]
 */
export async function requestJson(url, { method = "GET", csrfToken = "", headers = {}, keepalive = false, credentials = "same-origin", json, signal } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (method !== "GET" && csrfToken) sent["X-CSRFToken"] = csrfToken;
  const init = { method, headers: sent, credentials, cache: "no-store", keepalive, signal };
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new HttpError(0, error && error.message);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  if (!response.ok) throw new HttpError(response.status, body && body.message, body);
  return body;
}
