// ui/toast.js: brief messages in the corner ("Copied fitbit token — clipboard clears in 60 s").
// Owns: the toast stack. Polite live region, at most three at a time, each gone after a while.

import { h } from './dom.js';

const MAX = 3;

/** tone: 'info' | 'ok' | 'warn' | 'error' */
export function toast(message, tone = 'info', ms = 4500) {
  const stack = document.getElementById('toasts');
  if (!stack) return;
  const el = h('div', { class: `toast toast-${tone}`, testid: 'toast', role: tone === 'error' ? 'alert' : 'status' }, message);
  stack.append(el);
  while (stack.children.length > MAX) stack.firstElementChild.remove();
  setTimeout(() => {
    el.classList.add('leaving');
    setTimeout(() => el.remove(), 200);
  }, ms);
}
