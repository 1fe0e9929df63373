/**
 * Who else has the object of a Django admin change form open: "alice is also viewing this",
 * "bob is editing", live, in a line beside the widget's "someone changed this" banner.
 *
 * The page announces itself on the object's topic through the client (client.announce): "viewing"
 * once shown, "editing" from the first change to one of the form's fields (an input or change
 * event from a named field: a filter box of a multiple-choice widget is not a change), gone on
 * pagehide, and back in the state it left on a return from the back/forward cache. The client
 * reports who is there (`presence` events, the user's own entries included); the line leaves
 * the user out. It is an aria-live region (polite: it never interrupts), text only, styled by
 * widget.css in the admin's light and dark themes, with nothing inline.
 */

import { el } from "./dom.js";
import { gettext as _, interpolate, ngettext } from "./i18n.js";

/** Every sentence the line shows, in one place; phrase() fills in the {placeholders}. */
// Each a message of the widget's catalog (notifications/widget_strings.py), in the page's language.
export const MESSAGES = {
  viewingOne: () => _("%(name)s is also viewing this"),
  viewingMany: () => _("%(names)s are viewing this"),
  editingOne: () => _("%(name)s is editing"),
  editingMany: () => _("%(names)s are editing"),
  twoOrMore: () => _("%(first)s and %(last)s"), // "alice and bob", "alice, bob and carol"
  listSeparator: () => _(", "),
  others: (count) => ngettext("%(count)s other", "%(count)s others", count), // "alice, bob and 3 others"
  sentenceSeparator: () => _("; "), // "alice is editing; bob is also viewing this"
};
const MAX_NAMES = 3; // named in a list; beyond, the rest are counted

function phrase(key, values = {}) {
  return interpolate(MESSAGES[key](values.count), values);
}

/** "alice", "alice and bob", "alice, bob and carol", "alice, bob and 2 others". */
export function nameList(names) {
  const shown = names.length > MAX_NAMES ? [...names.slice(0, MAX_NAMES - 1), phrase("others", { count: names.length - MAX_NAMES + 1 })] : names;
  if (shown.length === 1) return shown[0];
  return phrase("twoOrMore", { first: shown.slice(0, -1).join(phrase("listSeparator")), last: shown[shown.length - 1] });
}

/** The line for the users present (the client's `presence` users, the viewer left out); "" for nobody. */
export function presenceText(users) {
  const parts = [];
  for (const state of ["editing", "viewing"]) {
    const names = users.filter((user) => user.state === state).map((user) => user.username);
    if (names.length === 1) parts.push(phrase(`${state}One`, { name: names[0] }));
    else if (names.length) parts.push(phrase(`${state}Many`, { names: nameList(names) }));
  }
  return parts.join(phrase("sentenceSeparator"));
}

class PresenceView {
  /**
   * @param {import("./client.js").NotificationsClient} client  subscribed to `topic` already
   * @param {{topic: string, userId: string, slot: Element, form: HTMLFormElement | null}} options
   */
  constructor(client, { topic, userId, slot, form }) {
    this.client = client;
    this.topic = topic;
    this.userId = String(userId);
    this.state = "viewing";
    this.text = "";
    this.region = el("div", "ntf-presence");
    this.region.dataset.ntfPresence = "";
    this.region.setAttribute("aria-live", "polite");
    this.region.setAttribute("aria-atomic", "true");
    const banner = slot.querySelector(":scope > [data-ntf-banner]");
    if (banner) banner.after(this.region);
    else slot.prepend(this.region); // a banner shown later goes above it
    client.on("presence", ({ topic: where, users }) => where === this.topic && this.render(users));
    if (form) {
      const edited = (event) => event.target && event.target.name && this.announce("editing");
      form.addEventListener("input", edited);
      form.addEventListener("change", edited);
    }
    window.addEventListener("pagehide", () => client.announce(topic, null));
    window.addEventListener("pageshow", (event) => event.persisted && client.announce(topic, this.state));
    client.announce(topic, this.state);
  }

  announce(state) {
    if (state === this.state) return;
    this.state = state;
    this.client.announce(this.topic, state);
  }

  render(users) {
    const others = users.filter((user) => String(user.id) !== this.userId);
    const text = presenceText(others);
    if (text === this.text) return; // said once: a live region repeats what changes
    this.text = text;
    if (!text) {
      this.region.replaceChildren();
      return;
    }
    const line = el("p", "ntf-presence-text", text);
    if (others.some((user) => user.state === "editing")) line.dataset.editing = "";
    this.region.replaceChildren(line);
  }
}

const views = new Map(); // topic → PresenceView: one line per object however many widgets the page has

/**
 * Show who else has the object of `topic` open, and announce this page there (once per page and
 * topic); `form`: the change form whose edits make the user "editing" (default: the admin's).
 */
export function showPresence(client, { topic, userId, slot, form = document.querySelector("#content-main form") }) {
  if (!views.has(topic)) views.set(topic, new PresenceView(client, { topic, userId, slot, form }));
  return views.get(topic);
}
