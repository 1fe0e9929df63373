/**
 * The preferences panel: the dropdown's second view, opened by its "Preferences" button. It
 * shows and edits what the user chose (live toasts, email digest, push, language, what they
 * muted, and "Notify me on this device" where the site has Web Push), saves with PATCH only
 * what they changed, and shows a 400's errors next to their fields (aria-describedby, and
 * announced), keeping every edit. Preferences changed elsewhere (another tab, another device)
 * appear at once, without overwriting what the user is editing here.
 */

import { button, el } from "./dom.js";
import { CheckboxField, ListField, SelectField } from "./preference-fields.js";

/** What a muted topic is about, in words. */
export function describeTopic(topic) {
  const [kind, model, id] = topic.split(":");
  if (kind === "model" && model) return `everything about ${model}`;
  if (kind === "object" && model && id !== undefined) return `${model} ${id}`;
  return "";
}

function labelOf(options, value, fallback) {
  const found = options.find((option) => option.value === value);
  return found ? found.label : fallback;
}

export class PreferencesPanel {
  /**
   * @param {import("./preferences.js").PreferencesStore} store
   * @param {{device: import("./device-control.js").DeviceControl | null, back: () => void}} options
   *   `back`: return to the list (the Back button; the widget also does on Escape)
   */
  constructor(store, { device, back }) {
    this.store = store;
    this.device = device;
    this.saving = false;
    this.element = el("form", "ntf-prefs");
    this.element.noValidate = true;
    this.element.dataset.ntfPrefs = "";
    this.element.hidden = true;
    this.element.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.fields = {
      toasts: new CheckboxField("toasts", "Live toasts on this site"),
      push: new CheckboxField("push", "Push notifications to my devices"),
      digest: new SelectField("digest", "Email digest"),
      language: new SelectField("language", "Language"),
      muted_kinds: new ListField("muted_kinds", "Muted kinds", { empty: "No kind is muted.", describe: () => "", onRemove: (name, next) => this.removed(name, next) }),
      muted_topics: new ListField("muted_topics", "Muted topics", { empty: "No topic is muted.", describe: describeTopic, onRemove: (name, next) => this.removed(name, next) }),
    };
    this.build(back);
    store.addEventListener("change", () => this.render());
  }

  build(back) {
    const head = el("div", "ntf-panel-head");
    this.backButton = button("ntf-link-button ntf-prefs-back", "Back");
    this.backButton.prepend(el("span", "", "‹ "));
    this.backButton.firstChild.setAttribute("aria-hidden", "true");
    this.backButton.append(el("span", "ntf-sr-only", " to notifications"));
    this.backButton.dataset.ntfPrefsBack = "";
    this.backButton.addEventListener("click", back);
    head.append(el("span", "ntf-panel-title", "Notification preferences"), this.backButton);

    const body = el("div", "ntf-prefs-body");
    this.alert = el("div", "ntf-prefs-alert");
    this.alert.setAttribute("role", "alert");
    this.alert.dataset.ntfPrefsAlert = "";
    const channels = el("fieldset", "ntf-prefs-group");
    channels.append(el("legend", "ntf-prefs-legend", "How to tell me"), this.fields.toasts.element, this.fields.push.element);
    if (this.device) channels.append(this.device.element);
    channels.append(this.fields.digest.element);
    body.append(this.alert, channels, this.fields.language.element, this.fields.muted_kinds.element, this.fields.muted_topics.element);

    const foot = el("div", "ntf-panel-foot ntf-prefs-foot");
    this.status = el("p", "ntf-prefs-status");
    this.status.setAttribute("role", "status");
    this.status.dataset.ntfPrefsStatus = "";
    this.saveButton = el("button", "ntf-primary-button", "Save");
    this.saveButton.type = "submit";
    this.saveButton.dataset.ntfPrefsSave = "";
    foot.append(this.status, this.saveButton);
    this.element.append(head, body, foot);
  }

  /** Show the panel, the focus on its first control (Back); load the preferences (kept edits stay). */
  async show() {
    this.element.hidden = false;
    this.backButton.focus();
    if (this.device) this.device.refresh();
    if (!this.store.loaded) this.say("Loading…");
    try {
      await this.store.load();
      if (this.status.textContent === "Loading…") this.say("");
    } catch (error) {
      this.say(`Could not load your preferences (${error.message}).`, true);
    }
  }

  hide() {
    this.element.hidden = true;
  }

  /** The store's values into the fields, except where the user changed a field since. */
  render() {
    const { applied, chosen, defaults, options } = this.store;
    if (!chosen) return;
    const digestOptions = options.digest || [];
    this.fields.digest.setOptions([{ value: "", label: `Site default (${labelOf(digestOptions, defaults.digest, "off")})` }, ...digestOptions]);
    const languages = (options.languages || []).map(({ code, name }) => ({ value: code, label: name }));
    const siteLanguage = defaults.language ? ` (${labelOf(languages, defaults.language, defaults.language)})` : "";
    this.fields.language.setOptions([{ value: "", label: `Site default${siteLanguage}` }, ...languages]);
    this.fields.toasts.take(applied.toasts);
    this.fields.push.take(applied.push);
    this.fields.digest.take(chosen.digest);
    this.fields.language.take(chosen.language);
    this.fields.muted_kinds.take([...applied.muted_kinds]);
    this.fields.muted_topics.take([...applied.muted_topics]);
  }

  /** The fields the user changed, as the API takes them. */
  changes() {
    return Object.fromEntries(Object.values(this.fields).filter((field) => field.dirty).map((field) => [field.name, field.value]));
  }

  removed(name, next) {
    this.say(`${name} will be unmuted when you save.`);
    (next || this.saveButton).focus();
  }

  async save() {
    this.clearErrors();
    const changes = this.changes();
    if (!Object.keys(changes).length) {
      this.say("Nothing to save: no changes.");
      return;
    }
    // The button keeps the focus (a disabled one would drop it): a second Save waits instead.
    if (this.saving) return;
    this.saving = true;
    this.say("Saving…");
    try {
      await this.store.save(changes);
      this.say("Preferences saved.");
    } catch (error) {
      const errors = error.status === 400 && error.body && error.body.errors;
      if (errors && typeof errors === "object") this.showErrors(errors);
      else this.say(`Not saved (${error.message}); your changes are still here: try again.`, true);
    } finally {
      this.saving = false;
    }
  }

  /** A 400's {field: [message, ...]}: each next to its field, all of them announced, the first focused. */
  showErrors(errors) {
    const lines = [];
    let first = null;
    for (const [name, messages] of Object.entries(errors)) {
      const text = (Array.isArray(messages) ? messages : [messages]).join(" ");
      const field = this.fields[name];
      if (field) {
        field.showError(text);
        first = first || field;
      }
      lines.push(field ? `${field.element.querySelector(".ntf-field-label").textContent}: ${text}` : text);
    }
    this.say("");
    this.alert.textContent = `Not saved. ${lines.join(" ")}`;
    if (first) first.control.focus();
  }

  clearErrors() {
    this.alert.textContent = "";
    Object.values(this.fields).forEach((field) => field.clearError());
  }

  say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("ntf-field-error", isError);
  }
}
