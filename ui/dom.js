// ui/dom.js: building DOM without innerHTML.
// Owns: `h` (element factory: text goes in as textContent, attributes via setAttribute),
// `keepFocus` (a redraw must not throw the keyboard user back to the top), `debounce`.
// Engine data never passes through an HTML parser, so a name like `<img onerror>` stays text.

/**
 * h('button', {class: 'btn', testid: 'copy', onclick: fn}, 'Copy token')
 * Props: class, text, testid, on<event>, value/checked (set as properties), true → empty
 * attribute, false/null/undefined → left out, anything else → setAttribute(key, String(v)).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [key, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (key === 'class') el.className = v;
    else if (key === 'text') el.textContent = v;
    else if (key === 'testid') el.setAttribute('data-testid', v);
    else if (key === 'value') value = v;
    else if (key === 'checked') el.checked = Boolean(v);
    else if (key.startsWith('on') && typeof v === 'function') el.addEventListener(key.slice(2), v);
    else el.setAttribute(key, v === true ? '' : String(v));
  }
  append(el, children);
  // After the children, so a <select> can pick one of its options.
  if (value !== undefined) el.value = value;
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * Makes `parent`'s children exactly `nodes`, touching only what differs: a node that stays
 * is never taken out of the document, so a click already pressed on it is not lost.
 */
export function reconcile(parent, nodes) {
  nodes.forEach((node, i) => {
    const at = parent.childNodes[i] || null;
    if (at !== node) parent.insertBefore(node, at);
  });
  while (parent.childNodes.length > nodes.length) parent.lastChild.remove();
}

const SVG = 'http://www.w3.org/2000/svg';
/** A small stroke icon from fixed path data (never engine data). */
export function icon(paths, cls = 'icon') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', cls);
  for (const d of paths) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

function focusKey(el) {
  if (!el || el === document.body) return null;
  const id = el.getAttribute('data-testid') || el.id || el.getAttribute('name');
  if (!id) return null;
  const row = el.closest('[data-account]');
  return { account: row ? row.getAttribute('data-account') : null, id };
}

/** Runs `redraw` and puts focus back on the equivalent element, if it still exists. */
export function keepFocus(root, redraw) {
  const active = document.activeElement;
  const key = root.contains(active) ? focusKey(active) : null;
  redraw();
  if (!key) return;
  const esc = (s) => (window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/["\\]/g, '\\$&'));
  const scope = key.account ? root.querySelector(`[data-account="${esc(key.account)}"]`) : root;
  const target =
    scope &&
    (scope.querySelector(`[data-testid="${esc(key.id)}"]`) ||
      scope.querySelector(`#${esc(key.id)}`) ||
      scope.querySelector(`[name="${esc(key.id)}"]`));
  if (target && !target.disabled) target.focus({ preventScroll: true });
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
