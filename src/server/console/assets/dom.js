// Building the page from data without ever parsing data as HTML: every text goes in as a
// text node, every attribute through setAttribute, every handler through addEventListener.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (name === "style") {
      throw new Error("inline styles are not allowed by the console's Content-Security-Policy");
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h("p", {class: "x"}, "text", h("b", {}, "bold")). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces an element's content. */
export function fill(element, ...children) {
  element.replaceChildren();
  return build(element, {}, children);
}

/** Unix seconds as "2026-05-04 13:07:09 UTC". */
export function when(unix) {
  if (unix === undefined || unix === null) return "—";
  return new Date(unix * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** "in 59 min", "3 min ago". */
export function relative(unix) {
  const seconds = Math.round(unix - Date.now() / 1000);
  const span = Math.abs(seconds);
  const text = span < 90 ? `${span} s` : span < 5400 ? `${Math.round(span / 60)} min` : `${Math.round(span / 3600)} h`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

/** A table with a caption: columns are [heading, cell(row)] pairs. */
export function table(caption, columns, rows, rowAttrs) {
  return h("div", {class: "table-wrap"},
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", {scope: "col"}, heading)))),
      h("tbody", {}, rows.length === 0
        ? h("tr", {}, h("td", {colspan: columns.length, class: "muted"}, "None."))
        : rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map(([, cell]) => h("td", {}, cell(row))))))));
}

/** A message for everyone (status) or an error (alert), in a live region. */
export function message(kind, text) {
  return h("p", {class: `message ${kind}`, role: kind === "error" ? "alert" : "status"}, text);
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const hintId = hint ? `${id}-hint` : undefined;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return h("div", {class: "field"},
    h("label", {for: id}, label),
    input,
    hint ? h("span", {class: "hint", id: hintId}, hint) : null);
}

/** Pretty JSON in a focusable, scrollable block. */
export function code(value, label) {
  return h("pre", {class: "json", tabindex: "0", "aria-label": label || "JSON"}, JSON.stringify(value, null, 2));
}

/** A section with a heading. */
export function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", {"aria-labelledby": id}, h("h2", {id}, title), children);
}
