/**
 * Grouped bursts in the widget: the events of one group (the payload's `group`, docs/protocol.md:
 * one actor's events of one kind about one model within a short window) are one list item and
 * one toast, "bob changed 50 orders", not fifty.
 *
 * The list is loaded grouped (`?grouped=1`); a group comes as an entry that the widget lists like
 * an event (its newest member's id, the group's title), and this module adds what is a group's
 * own: its member count, a disclosure listing its members (loaded from the group's endpoint when
 * first expanded), and marking the whole group read. Live events join the item of their group
 * (an event listed alone becomes a group of two); the count changes at once, and the title,
 * written by the server in the reader's language, is asked for again once the burst pauses
 * (one request for a burst of any size). A toast of the group still on screen takes the new
 * title instead of a new toast being shown.
 *
 * The words this module shows are in `strings`, one place for translations to replace.
 */

import { button, el, uniqueId } from "./dom.js";
import { requestJson } from "./http.js";
import { gettext as _ } from "./i18n.js";

export const strings = {
  members: _("Notifications of this group"),
  loading: _("Loading…"),
  loadFailed: _("Could not load the notifications of this group."),
  more: _("More"),
  markFailed: _("Could not mark the notifications of this group as read."),
  /** The title of a group of `count` until the server's arrives: the first event's and a count. */
  pending: (title, count) => _("%(title)s (+%(more)s)", { title, more: count - 1 }),
  /** What screen readers hear when a burst has grown. */
  grown: (title) => _("Updated notification: %(title)s", { title }),
};

const REFRESH_AFTER_MS = 400; // a burst's title is asked for once it pauses this long...
const REFRESH_AT_MOST_MS = 2000; // ...or at the latest this long after it changed
const MEMBERS_PAGE = 20;

/** A grouped list's entry as the widget lists it: a group looks like its newest event. */
export function listEntry(result) {
  if (!result || result.type !== "group" || !result.latest) return result;
  const latest = result.latest;
  return {
    type: "group",
    id: latest.id,
    group: result.group,
    count: result.count,
    title: result.title,
    body: "",
    url: "", // the item expands to its members, each with its link
    kind: result.kind,
    actor: result.actor,
    target: latest.target ? { type: latest.target.type } : null, // the model: what a group can be muted by
    created_at: result.last_at,
    read: Boolean(result.read),
    muted: Boolean(result.muted),
  };
}

export class Bursts {
  /**
   * @param widget the Widget (items, addItem, setItemRead, applyCount, request, say, showMessage, config)
   * @param render the widget's {safeUrl, timeElement}, so members look like its items
   */
  constructor(widget, render) {
    this.widget = widget;
    this.render = render;
    this.keys = new Map(); // group id → the key of its item in widget.items
    this.refreshes = new Map(); // group id → {timer, since}
  }

  item(group) {
    const key = this.keys.get(group);
    const item = key === undefined ? null : this.widget.items.get(key);
    return item && item.event.group === group ? item : null;
  }

  /** An item was added to the list: remember its group, and give a group's item its own parts. */
  added(item) {
    if (!Number.isInteger(item.event.group)) return;
    this.keys.set(item.event.group, item.event.id);
    if (item.event.type === "group") this.decorate(item);
  }

  /**
   * A live event of a group already listed joins that item (true); false when it is the first
   * of its group here, to be listed as itself.
   */
  join(event) {
    const item = Number.isInteger(event.group) ? this.item(event.group) : null;
    if (!item) return false;
    const widget = this.widget;
    if (item.event.type === "group") {
      widget.items.delete(item.event.id);
      item.event = { ...item.event, id: event.id, count: item.event.count + 1, created_at: event.created_at };
      item.node.dataset.eventId = String(event.id);
      widget.items.set(event.id, item);
      this.keys.set(event.group, event.id);
      if (item.read) widget.setItemRead(item, false);
      if (item.pendingTitle) this.setTitle(item, strings.pending(item.pendingTitle, item.event.count));
      this.showCount(item);
    } else {
      // An event listed alone becomes a group of two, in its place.
      const entry = {
        type: "group",
        id: event.id,
        group: event.group,
        count: 2,
        title: strings.pending(item.event.title, 2),
        body: "",
        url: "",
        kind: event.kind,
        actor: event.actor,
        target: event.target ? { type: event.target.type } : null,
        created_at: event.created_at,
        muted: Boolean(event.muted),
      };
      const old = item.node;
      widget.items.delete(item.event.id);
      widget.addItem(entry, false, true);
      const grouped = widget.items.get(event.id);
      grouped.pendingTitle = item.event.title;
      old.replaceWith(grouped.node);
    }
    this.scheduleRefresh(event.group);
    return true;
  }

  /** A live event of a group whose toast is still on screen: that toast says the group (true). */
  updateToast(event) {
    if (!Number.isInteger(event.group)) return false;
    const toast = document.querySelector(`[data-ntf-toasts] [data-ntf-toast][data-group="${event.group}"]`);
    if (!toast) return false;
    const item = this.item(event.group);
    const count = (Number(toast.dataset.count) || 1) + 1;
    toast.dataset.count = String(count);
    const title = toast.querySelector(".ntf-toast-title");
    if (!toast.dataset.firstTitle) toast.dataset.firstTitle = title.textContent;
    title.textContent = item && item.event.type === "group" && !item.pendingTitle ? item.event.title : strings.pending(toast.dataset.firstTitle, count);
    return true;
  }

  /** A `read` frame: a group item is read once it is covered (all read), else asked for again when it names members. */
  onRead(item, ids, upTo) {
    if (ids === null || ids === undefined) {
      if (upTo !== null && item.event.id <= upTo && !item.read) this.widget.setItemRead(item, true);
      return;
    }
    if (!item.read && (ids.includes(item.event.id) || (item.memberIds && ids.some((id) => item.memberIds.has(id))))) {
      this.scheduleRefresh(item.event.group);
    }
  }

  /** Mark every member of the group read (the item's click, or its "mark as read" button). */
  async markRead(item, { keepalive = false } = {}) {
    const widget = this.widget;
    if (item.read) return;
    widget.setItemRead(item, true);
    const liveMark = widget.liveSequence;
    try {
      const data = await widget.request(`${this.groupUrl(item.event.group)}read/`, { method: "POST", keepalive });
      if (data && Number.isInteger(data.unread_count)) widget.applyCount(data.unread_count, liveMark);
    } catch (error) {
      if (error.status !== 404) widget.setItemRead(item, false);
      widget.showMessage(strings.markFailed);
    }
  }

  groupUrl(group) {
    return new URL(this.widget.config.groupUrl.replace("{id}", encodeURIComponent(group)), window.location.href).href;
  }

  // A group's title, from the server once its burst pauses -----------------------------------------

  scheduleRefresh(group) {
    const now = Date.now();
    const pending = this.refreshes.get(group);
    if (pending) clearTimeout(pending.timer);
    const since = pending ? pending.since : now;
    const wait = Math.max(0, Math.min(REFRESH_AFTER_MS, since + REFRESH_AT_MOST_MS - now));
    this.refreshes.set(group, { since, timer: setTimeout(() => this.refresh(group), wait) });
  }

  async refresh(group) {
    this.refreshes.delete(group);
    let data;
    try {
      data = await this.widget.request(`${this.groupUrl(group)}?limit=1`);
    } catch {
      return; // the count stays right; the title says it the way it can
    }
    const item = this.item(group);
    const summary = data && data.summary;
    if (!item || !summary) return;
    if (summary.type === "group") {
      item.event = { ...item.event, count: summary.count, title: summary.title };
      item.pendingTitle = null;
      this.setTitle(item, summary.title);
      this.showCount(item);
      if (item.read !== Boolean(summary.read)) this.widget.setItemRead(item, Boolean(summary.read));
    }
    const toast = document.querySelector(`[data-ntf-toasts] [data-ntf-toast][data-group="${group}"]`);
    if (toast && summary.type === "group") {
      toast.querySelector(".ntf-toast-title").textContent = summary.title;
      this.widget.say(strings.grown(summary.title));
    }
  }

  setTitle(item, title) {
    item.event.title = title;
    const node = item.node.querySelector(".ntf-item-title");
    if (node) node.textContent = title;
  }

  showCount(item) {
    item.node.dataset.count = String(item.event.count);
  }

  // A group's item: a disclosure of its members -------------------------------------------------

  decorate(item) {
    const main = item.node.querySelector("[data-ntf-item]");
    const members = el("ul", "ntf-group-members");
    members.id = uniqueId("ntf-group-members");
    members.setAttribute("aria-label", strings.members);
    members.hidden = true;
    main.setAttribute("aria-expanded", "false");
    main.setAttribute("aria-controls", members.id);
    item.node.classList.add("ntf-group");
    item.node.dataset.group = String(item.event.group);
    item.node.append(members);
    this.showCount(item);
    main.addEventListener("click", () => {
      const open = members.hidden;
      members.hidden = !open;
      main.setAttribute("aria-expanded", String(open));
      if (open && !members.childElementCount) this.loadMembers(item, members, `${this.groupUrl(item.event.group)}?limit=${MEMBERS_PAGE}`);
    });
  }

  async loadMembers(item, members, url) {
    const status = el("li", "ntf-group-status", strings.loading);
    members.append(status);
    let data;
    try {
      data = await this.widget.request(url);
    } catch {
      status.textContent = strings.loadFailed;
      return;
    }
    status.remove();
    item.memberIds = item.memberIds || new Set();
    const first = members.childElementCount;
    for (const event of data.results || []) {
      item.memberIds.add(event.id);
      members.append(this.memberNode(event));
    }
    if (typeof data.next === "string") {
      const more = button("ntf-link-button ntf-group-more", strings.more);
      const row = el("li", "ntf-group-status");
      row.append(more);
      more.addEventListener("click", async () => {
        row.remove();
        const shown = members.childElementCount;
        await this.loadMembers(item, members, new URL(data.next, window.location.href).href);
        const next = members.children[shown];
        if (next && next.firstElementChild) next.firstElementChild.focus(); // the keyboard goes on with the new ones
      });
      members.append(row);
    }
    return first;
  }

  /** One member: its title (a link to it where it has one) and when it happened. */
  memberNode(event) {
    const row = el("li", "ntf-group-member");
    row.dataset.memberId = String(event.id);
    const href = this.render.safeUrl(event.url);
    const title = el(href ? "a" : "span", "ntf-group-member-title", event.title);
    if (href) title.href = href;
    else title.tabIndex = -1;
    row.append(title, document.createTextNode(" "), this.render.timeElement(event.created_at));
    return row;
  }
}
