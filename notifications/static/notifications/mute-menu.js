/**
 * The "mute" choices of one notification in the dropdown: a button that shows or hides them
 * (a disclosure: aria-expanded, reachable with Tab, Escape closes it and returns to the button),
 * offering to mute its kind, the object it is about, or every object of that model.
 */

import { button, el, uniqueId } from "./dom.js";

/** What muting can name for `event`: [{field, name, label}] (preferences' muted_kinds / muted_topics). */
export function muteChoices(event) {
  const choices = [];
  if (typeof event.kind === "string" && event.kind) {
    choices.push({ field: "muted_kinds", name: event.kind, label: `Mute all “${event.kind}” notifications` });
  }
  const target = event.target;
  if (target && typeof target.type === "string" && target.type) {
    if (target.id !== undefined && target.id !== null && String(target.id) !== "") {
      const what = target.repr ? `${target.type} “${target.repr}”` : `${target.type} ${target.id}`;
      choices.push({ field: "muted_topics", name: `object:${target.type}:${target.id}`, label: `Mute notifications about ${what}` });
    }
    choices.push({ field: "muted_topics", name: `model:${target.type}`, label: `Mute notifications about every ${target.type}` });
  }
  return choices;
}

/**
 * The toggle and its choices for one list item; `mute(choice)` runs when one is picked and
 * resolves once done (the choices then close and the focus goes back to the toggle).
 * Returns {toggle, options} to place in the item.
 */
export function muteMenu(event, mute) {
  const choices = muteChoices(event);
  const toggle = button("ntf-item-more", "");
  toggle.append(el("span", "ntf-item-more-dots", "⋯"));
  toggle.firstChild.setAttribute("aria-hidden", "true");
  toggle.setAttribute("aria-label", `Mute options: ${event.title}`);
  toggle.title = "Mute options";
  toggle.setAttribute("aria-expanded", "false");
  toggle.dataset.ntfMuteToggle = "";
  const options = el("div", "ntf-mute-options");
  options.id = uniqueId("ntf-mute-options");
  options.setAttribute("role", "group");
  options.setAttribute("aria-label", "Mute options");
  options.hidden = true;
  toggle.setAttribute("aria-controls", options.id);
  toggle.hidden = choices.length === 0;

  const setOpen = (open) => {
    options.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
  };
  for (const choice of choices) {
    const action = button("ntf-link-button ntf-mute-choice", choice.label);
    action.dataset.ntfMute = choice.field;
    let busy = false; // not disabled while busy: that would drop the focus
    action.addEventListener("click", async () => {
      if (busy) return;
      busy = true;
      try {
        await mute(choice);
      } finally {
        busy = false;
        setOpen(false);
        if (toggle.isConnected) toggle.focus();
      }
    });
    options.append(action);
  }
  toggle.addEventListener("click", () => {
    setOpen(options.hidden);
    if (!options.hidden) options.querySelector("button").focus();
  });
  const closeOnEscape = (key) => {
    if (key.key !== "Escape" || options.hidden) return;
    key.preventDefault();
    key.stopPropagation(); // the choices close, not the dropdown
    setOpen(false);
    toggle.focus();
  };
  options.addEventListener("keydown", closeOnEscape);
  toggle.addEventListener("keydown", closeOnEscape);
  return { toggle, options };
}
