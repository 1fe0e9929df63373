/**
 * The widget's words in the page's language, with no build step and nothing evaluated.
 *
 * `{% notifications_widget %}` renders the widget's catalog for the request's language as JSON in
 * the widget's `data-catalog` attribute (notifications/widget_strings.py): the language, its
 * plural rule as gettext writes it (a C expression of n, such as "(n > 1)") and each message's
 * translation (a list of forms for plural messages). The messages are the English texts
 * themselves, as with gettext, so a page without a catalog (or a message missing from it) shows
 * English. Placeholders are Python's `%(name)s`, shared with the server's translations.
 *
 * The plural rule is read by the small parser below, never by eval() or new Function(): the
 * widget runs under a Content-Security-Policy without 'unsafe-eval'.
 */

let catalog = null;

function loaded() {
  if (catalog) return catalog;
  catalog = { language: "", plural: (n) => (n === 1 ? 0 : 1), messages: {} };
  const node = typeof document === "undefined" ? null : document.querySelector("[data-ntf-widget][data-catalog]");
  if (!node) return catalog;
  try {
    const data = JSON.parse(node.dataset.catalog);
    catalog = {
      language: typeof data.language === "string" ? data.language : "",
      plural: pluralRule(data.plural),
      messages: data.messages && typeof data.messages === "object" ? data.messages : {},
    };
  } catch (error) {
    console.error("notifications: the widget's catalog is not readable; English is shown.", error);
  }
  return catalog;
}

/** The language the widget speaks: its catalog's, else the page's (<html lang>), else the browser's. */
export function language() {
  return loaded().language || (typeof document === "undefined" ? "" : document.documentElement.lang) || undefined;
}

/** `text` with each %(name)s replaced by values[name] (as text). */
export function interpolate(text, values = {}) {
  return text.replace(/%\((\w+)\)s/g, (match, name) => (name in values ? String(values[name]) : match));
}

/** The translation of `message`, its placeholders filled from `values`. */
export function gettext(message, values) {
  const found = loaded().messages[message];
  return interpolate(typeof found === "string" && found ? found : message, values);
}

/** The form of `singular`/`plural` for `count` in the widget's language; `count` fills %(count)s too. */
export function ngettext(singular, plural, count, values = {}) {
  const { messages, plural: rule } = loaded();
  const forms = messages[singular];
  const form = Array.isArray(forms) ? forms[rule(count)] : null;
  return interpolate(typeof form === "string" && form ? form : count === 1 ? singular : plural, { count, ...values });
}

/** "il y a 3 minutes": an ISO date relative to now, in the widget's language. */
export function relativeTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  let format;
  try {
    format = new Intl.RelativeTimeFormat(language(), { numeric: "auto" });
  } catch {
    format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  }
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return Math.abs(seconds) < 10 ? format.format(0, "second") : format.format(seconds, "second");
}

// gettext's plural rules: C expressions of n -------------------------------------------------------

const BINARY = [["||"], ["&&"], ["==", "!="], ["<", "<=", ">", ">="], ["+", "-"], ["*", "/", "%"]];
const APPLY = {
  "||": (a, b) => (a || b ? 1 : 0),
  "&&": (a, b) => (a && b ? 1 : 0),
  "==": (a, b) => (a === b ? 1 : 0),
  "!=": (a, b) => (a !== b ? 1 : 0),
  "<": (a, b) => (a < b ? 1 : 0),
  "<=": (a, b) => (a <= b ? 1 : 0),
  ">": (a, b) => (a > b ? 1 : 0),
  ">=": (a, b) => (a >= b ? 1 : 0),
  "+": (a, b) => a + b,
  "-": (a, b) => a - b,
  "*": (a, b) => a * b,
  "/": (a, b) => Math.trunc(a / b),
  "%": (a, b) => a % b,
};

/**
 * A function n → form index for a gettext plural expression ("n==1 ? 0 : n%10>=2 ? 1 : 2"),
 * built as a tree of closures; an expression it cannot read gives English's rule.
 */
export function pluralRule(expression) {
  const english = (n) => (n === 1 ? 0 : 1);
  if (typeof expression !== "string") return english;
  const tokens = expression.match(/\d+|n|\|\||&&|[=!<>]=|[-+*/%<>!?:()]|\S/g) || [];
  let position = 0;
  const peek = () => tokens[position];
  const take = (expected) => {
    if (tokens[position] !== expected) throw new SyntaxError(`expected ${expected} at ${position} in ${expression}`);
    position += 1;
  };

  function conditional() {
    const test = binary(0);
    if (peek() !== "?") return test;
    take("?");
    const yes = conditional();
    take(":");
    const no = conditional();
    return (n) => (test(n) ? yes(n) : no(n));
  }

  function binary(level) {
    if (level === BINARY.length) return unary();
    let left = binary(level + 1);
    while (BINARY[level].includes(peek())) {
      const apply = APPLY[tokens[position++]];
      const [a, b] = [left, binary(level + 1)];
      left = (n) => apply(a(n), b(n));
    }
    return left;
  }

  function unary() {
    const token = tokens[position++];
    if (token === "!") {
      const operand = unary();
      return (n) => (operand(n) ? 0 : 1);
    }
    if (token === "(") {
      const inner = conditional();
      take(")");
      return inner;
    }
    if (token === "n") return (n) => n;
    if (/^\d+$/.test(token || "")) {
      const value = Number(token);
      return () => value;
    }
    throw new SyntaxError(`unexpected ${token} in ${expression}`);
  }

  try {
    const rule = conditional();
    if (position !== tokens.length) throw new SyntaxError(`unexpected ${peek()} in ${expression}`);
    return (n) => Number(rule(Math.abs(Math.trunc(n))));
  } catch (error) {
    console.error("notifications: a plural rule the widget cannot read; English's is used.", error);
    return english;
  }
}
