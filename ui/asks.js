// ui/asks.js: ask first's prompt. A program not yet known asked for a token and the engine
// holds its request: the window shows the oldest waiting ask (who, for which account, how
// long until it is refused) with Deny, Allow once and Always for this program.
// Owns: the one <dialog id="ask-dialog">. Escape denies: the safe answer. Names and paths
// only; no token ever reaches the page.

import * as api from './api.js';
import { h, replace } from './dom.js';
import { parseTime } from './format.js';
import { toast } from './toast.js';

let shown = null; // the ask in the dialog
let ticking = null;
let busy = false;

/** "python3 (/usr/bin/python3 /home/me/sync.py, pid 4242)" */
export function programWords(p) {
  const name = p.command || (p.exe ? p.exe.split('/').pop() : 'An unknown program');
  const where = [p.exe, p.detail].filter(Boolean).join(' ');
  const inner = [where, p.pid ? `pid ${p.pid}` : null].filter(Boolean).join(', ');
  return { name, inner };
}

function secondsLeft(ask) {
  const t = parseTime(ask.expires_at);
  return t === null ? null : Math.max(0, Math.ceil((t - Date.now()) / 1000));
}

async function answer(ask, how) {
  if (busy) return;
  busy = true;
  try {
    await api.answerAsk(ask.id, how);
    const words = { once: 'Allowed once', always: 'Allowed always', deny: 'Denied' }[how];
    toast(`${words}: ${programWords(ask.program).name} for ${ask.account}`, how === 'deny' ? 'warn' : 'ok');
  } catch (err) {
    toast(err.message, 'error');
  }
  busy = false;
  await refreshAsks();
}

function draw(dlg, ask) {
  const who = programWords(ask.program);
  const left = h('p', { class: 'field-help ask-left', testid: 'ask-left' });
  const tick = () => {
    const s = secondsLeft(ask);
    left.textContent = s === null ? '' : `Refused in ${s} s unless you answer.`;
  };
  tick();
  clearInterval(ticking);
  ticking = setInterval(tick, 1000);
  const form = h(
    'form',
    { method: 'dialog', class: 'dialog-form', onsubmit: (e) => e.preventDefault() },
    h('h2', { class: 'dialog-title', id: 'ask-title' }, 'A program asks for a token'),
    h(
      'p',
      { class: 'dialog-body', testid: 'ask-text' },
      h('strong', {}, who.name),
      who.inner ? ` (${who.inner})` : '',
      ' asks for ',
      h('strong', { testid: 'ask-account' }, ask.account),
      '’s token',
    ),
    left,
    ask.can_remember ? null : h('p', { class: 'field-help' }, 'Its executable is not known, so it can only be allowed once.'),
    h(
      'div',
      { class: 'dialog-actions' },
      h('button', { type: 'button', class: 'btn btn-quiet-danger', testid: 'ask-deny', onclick: () => answer(ask, 'deny') }, 'Deny'),
      h('button', { type: 'button', class: 'btn', testid: 'ask-once', autofocus: true, onclick: () => answer(ask, 'once') }, 'Allow once'),
      h('button', { type: 'button', class: 'btn btn-primary', testid: 'ask-always', disabled: !ask.can_remember, onclick: () => answer(ask, 'always') }, 'Always for this program'),
    ),
  );
  replace(dlg, form);
  dlg.setAttribute('aria-labelledby', 'ask-title');
  dlg.setAttribute('data-ask-id', String(ask.id));
}

/** Shows the oldest waiting ask, or closes the prompt when none waits. */
export async function refreshAsks() {
  let asks;
  try {
    asks = await api.asks();
  } catch {
    return;
  }
  const dlg = document.getElementById('ask-dialog');
  const next = (asks || [])[0] || null;
  if (!next) {
    shown = null;
    clearInterval(ticking);
    if (dlg.open) dlg.close();
    return;
  }
  if (shown && shown.id === next.id && dlg.open) return;
  shown = next;
  draw(dlg, next);
  if (!dlg.open) dlg.showModal();
}

export function setUpAsks() {
  const dlg = document.getElementById('ask-dialog');
  dlg.addEventListener('cancel', (e) => {
    e.preventDefault();
    if (shown) answer(shown, 'deny');
  });
}
