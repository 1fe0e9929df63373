/**
 * Presence as the browser keeps it (docs/protocol.md, "Presence"): who has an object open, from
 * the relay's `presence_state` snapshot and `presence_diff` changes, one entry per socket, and
 * the one state a browser announces for a topic when several of its tabs have it open. Pure
 * functions over Maps, used by client.js (the entries, the users) and leader.js (the merge).
 */

export const PRESENCE_STATES = ["viewing", "editing"];

function isEntry(entry) {
  return (
    entry !== null &&
    typeof entry === "object" &&
    PRESENCE_STATES.includes(entry.state) &&
    entry.user !== null &&
    typeof entry.user === "object" &&
    (typeof entry.user.id === "number" || typeof entry.user.id === "string") &&
    typeof entry.user.username === "string"
  );
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * The entries (socket key → {user, state}) of a topic after `frame`: a snapshot replaces them,
 * a diff adds (or replaces) its joins and removes its leaves. `entries` is left as it was.
 */
export function applyPresenceFrame(entries, frame) {
  const next = frame.type === "presence_state" ? new Map() : new Map(entries);
  const add = (object) => isObject(object) && Object.entries(object).forEach(([key, entry]) => isEntry(entry) && next.set(key, entry));
  if (frame.type === "presence_state") {
    add(frame.presences);
  } else {
    add(frame.joins);
    if (isObject(frame.leaves)) Object.keys(frame.leaves).forEach((key) => next.delete(key));
  }
  return next;
}

/**
 * One line per user present, from a topic's entries: a user with several sockets there (tabs of
 * other browsers, other devices) is "editing" if any of them is; sorted by username, then id.
 */
export function presenceUsers(entries) {
  const users = new Map();
  (entries || new Map()).forEach(({ user, state }) => {
    const id = String(user.id);
    const known = users.get(id);
    if (!known) users.set(id, { id: user.id, username: user.username, state });
    else if (state === "editing") known.state = "editing";
  });
  return [...users.values()].sort((a, b) => a.username.localeCompare(b.username) || String(a.id).localeCompare(String(b.id)));
}

/**
 * What one socket announces for a browser's tabs (`members`: tab → {topics, presence}): on each
 * topic some tab follows and announced itself on, "editing" if any tab is, else "viewing".
 */
export function mergedPresence(members) {
  const merged = new Map();
  members.forEach((member) =>
    member.presence.forEach((state, topic) => {
      if (member.topics.has(topic) && merged.get(topic) !== "editing") merged.set(topic, state);
    }),
  );
  return merged;
}
