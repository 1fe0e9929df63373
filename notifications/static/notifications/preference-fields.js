/**
 * The controls of the preferences panel, one per preference: a checkbox, a select or a list of
 * removable entries, each with its label and a place for the server's error next to it. Each
 * field reads and writes its value as the API has it (a boolean, a string or null for the
 * site's default, a list of names) and remembers the value it was last given (its baseline),
 * so the panel sends only what the user changed.
 */

import { button, el, uniqueId } from "./dom.js";

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

class Field {
  constructor(name, element, control) {
    this.name = name;
    this.element = element;
    this.control = control; // what takes the focus and the error's description
    this.baseline = undefined;
    this.error = el("p", "ntf-field-error");
    this.error.id = uniqueId(`ntf-error-${name}`);
    this.error.hidden = true;
    this.element.append(this.error);
  }

  get dirty() {
    return this.baseline !== undefined && !same(this.value, this.baseline);
  }

  /** The server's value: shown unless the user changed this field meanwhile; the new baseline. */
  take(value) {
    if (!this.dirty) this.value = value;
    this.baseline = value;
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
    this.control.setAttribute("aria-invalid", "true");
    this.control.setAttribute("aria-describedby", this.error.id);
  }

  clearError() {
    this.error.textContent = "";
    this.error.hidden = true;
    this.control.removeAttribute("aria-invalid");
    this.control.removeAttribute("aria-describedby");
  }
}

/** Name a control and give it an id; its label. */
function labelFor(control, name, label) {
  control.id = uniqueId(`ntf-${name}`);
  control.name = name;
  const text = el("label", "ntf-field-label", label);
  text.htmlFor = control.id;
  return text;
}

export class CheckboxField extends Field {
  constructor(name, label) {
    const input = el("input", "ntf-checkbox");
    input.type = "checkbox";
    const text = labelFor(input, name, label);
    const element = el("div", "ntf-field ntf-field-check");
    element.append(input, text);
    super(name, element, input);
  }

  get value() {
    return this.control.checked;
  }

  set value(value) {
    this.control.checked = value !== false;
  }
}

export class SelectField extends Field {
  constructor(name, label) {
    const select = el("select", "ntf-select");
    const text = labelFor(select, name, label);
    const element = el("div", "ntf-field");
    element.append(text, select);
    super(name, element, select);
  }

  /** [{value, label}]; the value "" stands for null, the site's default. The chosen value stays. */
  setOptions(options) {
    const current = this.control.value;
    this.control.replaceChildren(
      ...options.map(({ value, label }) => {
        const option = el("option", "", label);
        option.value = value;
        return option;
      }),
    );
    if (options.some(({ value }) => value === current)) this.control.value = current;
  }

  get value() {
    return this.control.value || null;
  }

  set value(value) {
    this.control.value = value || "";
  }
}

/** A list of names (muted kinds or topics), each with a Remove button; changes wait for Save. */
export class ListField extends Field {
  /** @param {(name: string) => string} describe  what an entry is, in words */
  constructor(name, label, { empty, describe, onRemove }) {
    const fieldset = el("fieldset", "ntf-field ntf-field-list");
    fieldset.append(el("legend", "ntf-field-label", label));
    const list = el("ul", "ntf-mutes");
    list.setAttribute("role", "list");
    const none = el("p", "ntf-mutes-empty", empty);
    fieldset.append(list, none);
    super(name, fieldset, fieldset);
    fieldset.tabIndex = -1; // takes the focus when the server refused the list, not in the Tab order
    this.list = list;
    this.none = none;
    this.describe = describe;
    this.onRemove = onRemove;
    this.names = [];
  }

  get value() {
    return [...this.names];
  }

  set value(names) {
    this.names = Array.isArray(names) ? [...names] : [];
    this.list.replaceChildren(...this.names.map((name) => this.entry(name)));
    this.none.hidden = this.names.length > 0;
  }

  entry(name) {
    const item = el("li", "ntf-mute");
    item.dataset.name = name;
    const text = el("span", "ntf-mute-text");
    text.append(el("code", "ntf-mute-name", name));
    const described = this.describe(name);
    if (described) text.append(el("span", "ntf-mute-about", described));
    const remove = button("ntf-link-button ntf-mute-remove", "Remove");
    remove.append(el("span", "ntf-sr-only", ` ${name}`));
    remove.addEventListener("click", () => this.remove(name));
    item.append(text, remove);
    return item;
  }

  remove(name) {
    const index = this.names.indexOf(name);
    if (index < 0) return;
    this.value = this.names.filter((each) => each !== name);
    const removes = this.list.querySelectorAll(".ntf-mute-remove");
    this.onRemove(name, removes[Math.min(index, removes.length - 1)] || null);
  }
}
