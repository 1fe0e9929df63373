/**
 * Types of client.js, the headless client of the notifications relay (docs/client.md,
 * docs/protocol.md).
 */

/** disconnected → connecting → connected; reconnecting or polling after a drop; offline once logged out. */
export type ClientState = "disconnected" | "connecting" | "connected" | "reconnecting" | "polling" | "offline";

export const STATES: readonly ClientState[];
export const EVENT_TYPES: readonly (keyof ClientEventMap)[];
export const BACKOFF_BASE_MS: number;
export const BACKOFF_CAP_MS: number;

/** Milliseconds before retry `attempt`: uniform in [0, min(cap, base × 2^attempt)) (full jitter). */
export function backoffDelay(attempt: number, random?: () => number, base?: number, cap?: number): number;

/** A failed HTTP request: `status` 0 when the server could not be reached. */
export class HttpError extends Error {
  constructor(status: number, message?: string, body?: unknown);
  status: number;
  /** The JSON the server answered with the error (e.g. a 400's {error, errors}), or null. */
  body: unknown;
}

export interface Ticket {
  /** The ticket sent as the first message (`auth`); none in cookie mode. */
  ticket?: string;
  /** The relay's ws:// or wss:// URL. */
  url: string;
}

export interface ClientOptions {
  /** GET endpoint answering {ticket, url} (the app's `/notifications/ws-ticket/`): ticket authentication. */
  ticketUrl?: string;
  /** Fetch a ticket yourself (e.g. with a bearer token): ticket authentication. */
  getTicket?: () => Promise<Ticket>;
  /** The relay's URL. Alone: the session cookie authenticates the socket. With ticketUrl: overrides the URL the ticket names. */
  url?: string;
  /** Topics besides the inbox (always followed), e.g. ["model:*"]. Default: none. */
  topics?: string[] | string;
  /** The HTTP feed (`/notifications/api/notifications/`): polled while WebSockets are blocked. Without it, no polling. */
  listUrl?: string;
  /** Share one socket between the tabs of this site (Web Locks + BroadcastChannel). Default true. */
  share?: boolean;
  /** Tabs whose clients have the same key share a socket. Default: the ticket URL or relay URL. */
  key?: string;
  /** Sockets that fail to open in a row before polling starts. Default 3. */
  pollAfter?: number;
  /** Milliseconds between polls while something changes; slower (×1.5 a poll) up to maxPollInterval while nothing does. Default 5000. */
  pollInterval?: number;
  /** Default 60000. */
  maxPollInterval?: number;
  /** Milliseconds between heartbeat pings. Default 30000. */
  heartbeatMs?: number;
  /** Milliseconds a heartbeat waits for its pong before the socket counts as dead. Default 10000. */
  pongTimeoutMs?: number;
  /** Hand the socket over on pagehide, take part again on pageshow, retry when the browser is back online. Default true. */
  lifecycle?: boolean;
}

/** An event as the relay and the HTTP feed describe it (docs/protocol.md). */
export interface NotificationEvent {
  id: number;
  kind: string;
  title: string;
  body: string;
  url: string;
  actor: { id: number | string; username: string } | null;
  target: { type: string; id: string; repr: string } | null;
  created_at: string;
  data: Record<string, unknown>;
  /** Admin and model events: the group it belongs to (its first event's id; its own id when alone), see docs/protocol.md "Grouped bursts". */
  group?: number;
  /** Only on events found by polling the feed. */
  read?: boolean;
  /** On feed entries: whether the user muted what this event is about (see EventDetail.muted). */
  muted?: boolean;
}

export interface StateDetail {
  state: ClientState;
  previous: ClientState;
  /** The close code (or 0 when no socket was opened) that led here, if any. */
  code?: number;
  reason?: string;
  /** On "connected": whether it resumed from a cursor (a reconnection). */
  resumed?: boolean;
  /** On "connected": whether the relay answered `resync` (reload state over HTTP). */
  resynced?: boolean;
}

export interface EventDetail {
  event: NotificationEvent;
  topic: string;
  /** null for events found by polling. */
  cursor: string | null;
  /** Whether this tab is the one of the browser that shows the event (focused, or the connection's). */
  present: boolean;
  /** Whether no tab is focused: a desktop notification is in order (in the presenting tab). */
  desktop: boolean;
  /**
   * Whether the user muted this event (its kind, its model or its object: the frame's or the
   * feed entry's `"muted": true`). List it, count it, but do not toast, notify or sound it.
   */
  muted: boolean;
}

/** A user's notification preferences as they apply now (docs/protocol.md, the preferences API). */
export interface Preferences {
  /** Live toasts while a page of the site is open. */
  toasts: boolean;
  digest: "off" | "hourly" | "daily" | "weekly" | string;
  /** Web Push to the devices the user subscribed. */
  push: boolean;
  /** A language code of the site's, or "" for the site's default. */
  language: string;
  /** Kinds muted, e.g. "model.updated". */
  muted_kinds: string[];
  /** Topics muted: "model:<app_label>.<model>" or "object:<app_label>.<model>:<pk>". */
  muted_topics: string[];
}

/** Notifications were marked read (any tab, any device): docs/protocol.md, the `read` frame. */
export interface ReadDetail {
  topic: string;
  /** The ids marked read; null when all were, up to `up_to`. */
  ids: number[] | null;
  up_to: number | null;
  /** The user's unread count after the change. */
  unread_count: number;
  /** The newest event counted in unread_count: count only events with a greater id from now on. */
  latest: number | null;
}

export interface ErrorFrame {
  type: "error";
  code: "forbidden" | "bad_request" | "unknown_topic" | "rate_limited" | "too_many_topics" | string;
  message: string;
  ref?: number | string;
}

export interface SubscriptionFrame {
  type: "subscribed" | "unsubscribed";
  topics: string[];
  reason?: "requested" | "permission_revoked";
  ref?: number | string;
}

export interface SubscriptionResult {
  /** The topics asked for that are now followed (subscribe) or no longer followed (unsubscribe). */
  topics: string[];
  /** The relay's errors for the request (refused topics). */
  errors: { code: string; message: string }[];
}

/** What a tab says of an object it shows: its user looks at it, or changes it. */
export type PresenceState = "viewing" | "editing";

/** Someone who has an object open (one per user, however many tabs and devices: "editing" if any edits). */
export interface PresentUser {
  id: number | string;
  username: string;
  state: PresenceState;
}

/** Who has the object of `topic` open now, the user themselves included; sorted by username. */
export interface PresenceDetail {
  topic: string;
  users: PresentUser[];
}

export interface ClientEventMap {
  state: StateDetail;
  event: EventDetail;
  read: ReadDetail;
  /** While polling: the server's unread count, after the events the poll found. */
  unread: { unread_count: number };
  /** Missed events could not be replayed: reload your state over HTTP. */
  resync: Record<string, never>;
  /** The user changed their preferences (in any tab or on any device): they apply from now on. */
  preferences: { preferences: Preferences };
  /**
   * For a topic this tab announced itself on: who is there, after each change the relay tells
   * (and `users: []` when the connection drops: nobody is known until the next one's snapshot).
   */
  presence: PresenceDetail;
  welcome: { user: { id: number | string; username: string } | null; topics: string[] };
  subscribed: SubscriptionFrame;
  unsubscribed: SubscriptionFrame;
  error: ErrorFrame;
  /** This tab took the connection over. */
  leader: { leader: true };
}

export class NotificationsClient extends EventTarget {
  constructor(options: ClientOptions);
  readonly state: ClientState;
  /** The last cursor seen: where a reconnection resumes. */
  readonly cursor: string | null;
  readonly user: { id: number | string; username: string } | null;
  /** Whether this tab holds the browser's socket. */
  readonly isLeader: boolean;
  readonly tabId: string;
  connect(): this;
  disconnect(): this;
  retry(): void;
  subscribe(topics: string[] | string): Promise<SubscriptionResult>;
  unsubscribe(topics: string[] | string): Promise<SubscriptionResult>;
  /**
   * This tab shows the object of `topic` (an object: topic it subscribed to; else a TypeError):
   * "viewing", "editing", or null when it is gone. The browser's tabs are announced together
   * (editing wins), again after every reconnection; `presence` events follow.
   */
  announce(topic: string, state: PresenceState | null): void;
  /** Listen to one kind of event; returns the function that stops listening. */
  on<K extends keyof ClientEventMap>(type: K, listener: (detail: ClientEventMap[K]) => void): () => void;
  addEventListener<K extends keyof ClientEventMap>(type: K, listener: (event: CustomEvent<ClientEventMap[K]>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ClientEventMap>(type: K, listener: (event: CustomEvent<ClientEventMap[K]>) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}
