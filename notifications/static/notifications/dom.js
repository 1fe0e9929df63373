/**
 * Building the widget's markup: elements with text content only, never HTML, so that event text
 * and server messages (untrusted) cannot become markup.
 */

let unique = 0;

/** An element with a class and text content (never HTML). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** A button of `type` "button" (not a form's submit by accident). */
export function button(className, text) {
  const node = el("button", className, text);
  node.type = "button";
  return node;
}

/** An id no other element of the page has, for labels and aria-describedby. */
export function uniqueId(prefix) {
  unique += 1;
  return `${prefix}-${unique}`;
}
