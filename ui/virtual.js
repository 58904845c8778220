// ui/virtual.js: a long list that draws only the rows near what the scroller shows.
// Owns: which rows are in the document, the spacers standing in for the others, and the row
// heights measured so far. With 100,000 accounts the page holds about twenty cards, not
// 100,000: drawing, the per-second tick and a search stay as quick as with ten.
// A short list (up to `whole` rows) is drawn whole, exactly as before: no spacers, no guessing.

import { h, reconcile } from './dom.js';

/** Pixels drawn beyond each edge of the scroller, so a flick does not show blank space. */
const OVERSCAN = 800;
/** A row's height (card plus gap) before it was ever drawn. */
const GUESS = 200;

/**
 * list: the element holding the rows; scroller: the element that scrolls (an ancestor);
 * key(item) → string; draw(item, old) → node (`old` is the node drawn for that key, if any);
 * gap: the space after each row in pixels (CSS `.virtual > *` margin).
 */
export function createVirtualList({ list, scroller, key, draw, whole = 60, gap = 14 }) {
  const pitch = new Map(); // key → measured height plus gap
  const above = h('div', { class: 'virtual-spacer', 'aria-hidden': 'true' });
  const below = h('div', { class: 'virtual-spacer', 'aria-hidden': 'true' });
  let items = [];
  let range = [0, -1];
  let pending = false;

  const guess = () => {
    if (pitch.size === 0) return GUESS;
    let sum = 0;
    for (const p of pitch.values()) sum += p;
    return sum / pitch.size;
  };
  const heightOf = (item, fallback) => pitch.get(key(item)) ?? fallback;

  /** The first and last index to draw for the scroller's position now. */
  function visibleRange() {
    const fallback = guess();
    const listTop = list.getBoundingClientRect().top - scroller.getBoundingClientRect().top + scroller.scrollTop;
    const from = scroller.scrollTop - listTop - OVERSCAN;
    const to = scroller.scrollTop - listTop + scroller.clientHeight + OVERSCAN;
    let y = 0;
    let first = items.length;
    let last = -1;
    for (let i = 0; i < items.length; i++) {
      const p = heightOf(items[i], fallback);
      if (first === items.length && y + p > from) first = i;
      if (y >= to) break;
      last = i;
      y += p;
    }
    if (first > last) first = Math.max(0, Math.min(last, items.length - 1));
    return [first, last];
  }

  function sum(fromIndex, toIndex, fallback) {
    let total = 0;
    for (let i = fromIndex; i < toIndex; i++) total += heightOf(items[i], fallback);
    return total;
  }

  function drawRange() {
    const drawn = new Map([...list.children].map((r) => [r.getAttribute('data-key'), r]));
    const [first, last] = range;
    const rows = [];
    for (let i = first; i <= last; i++) {
      const k = key(items[i]);
      const node = draw(items[i], drawn.get(k));
      node.setAttribute('data-key', k);
      rows.push(node);
    }
    const fallback = guess();
    above.style.height = `${sum(0, first, fallback)}px`;
    below.style.height = `${sum(last + 1, items.length, fallback)}px`;
    reconcile(list, [above, ...rows, below]);
    for (const node of rows) pitch.set(node.getAttribute('data-key'), node.offsetHeight + gap);
  }

  function render(next) {
    items = next;
    if (items.length <= whole) {
      list.classList.remove('virtual');
      const drawn = new Map([...list.children].map((r) => [r.getAttribute('data-key'), r]));
      reconcile(
        list,
        items.map((item) => {
          const k = key(item);
          const node = draw(item, drawn.get(k));
          node.setAttribute('data-key', k);
          return node;
        }),
      );
      return;
    }
    list.classList.add('virtual');
    range = visibleRange();
    drawRange();
  }

  scroller.addEventListener(
    'scroll',
    () => {
      if (pending || items.length <= whole) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        const next = visibleRange();
        if (next[0] !== range[0] || next[1] !== range[1]) {
          range = next;
          drawRange();
        }
      });
    },
    { passive: true },
  );

  /** Scrolls the row of `k` to the middle of the scroller and draws it; false if not listed. */
  function scrollTo(k) {
    const i = items.findIndex((item) => key(item) === k);
    if (i < 0) return false;
    if (items.length > whole) {
      const listTop = list.getBoundingClientRect().top - scroller.getBoundingClientRect().top + scroller.scrollTop;
      const y = listTop + sum(0, i, guess());
      scroller.scrollTo({ top: Math.max(0, y - scroller.clientHeight / 2), behavior: 'instant' });
      range = visibleRange();
      drawRange();
    }
    return true;
  }

  return { render, scrollTo };
}
