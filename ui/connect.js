// ui/connect.js: one consent flow at a time, started from Add account or from an account row.
// Owns: the flow's state (starting → waiting → ended), the waiting panel, Cancel.
// The flow ends on the engine's `connect_progress` event (completed, failed, cancelled), or
// on an error from `begin_connect`; `setConnectListener` tells the app either way.

import * as api from './api.js';
import { h } from './dom.js';

let current = null; // {account, device, origin: 'add'|'accounts', flow, stage, cancelling}
let listener = () => {};

/** fn(current, ended): `ended` is set once, with {account, origin, stage, message}. */
export function setConnectListener(fn) {
  listener = fn;
}

export const connecting = () => current;

function set(next, ended = null) {
  current = next;
  listener(current, ended);
}

function finish(stage, message) {
  const ended = current;
  if (!ended) return;
  set(null, { account: ended.account, origin: ended.origin, stage, message: message || null });
}

export async function startConnect(account, device, origin) {
  set({ account, device: Boolean(device), origin, flow: null, stage: 'starting', cancelling: false });
  try {
    const flow = await api.beginConnect(account, Boolean(device));
    // The flow may have ended already (an event can beat the answer).
    if (current && current.account === account && current.stage === 'starting') {
      set({ ...current, flow, stage: 'waiting' });
    }
  } catch (err) {
    if (current && current.account === account) finish('failed', err.message);
  }
}

/** Handles a `connect_progress` engine event; returns true when it ended our flow. */
export function onConnectProgress(payload) {
  if (!current || payload.account !== current.account) return false;
  if (!['completed', 'failed', 'cancelled'].includes(payload.stage)) return false;
  finish(payload.stage, payload.message);
  return true;
}

export async function cancelConnect() {
  if (!current || current.cancelling) return;
  const account = current.account;
  set({ ...current, cancelling: true });
  try {
    await api.cancelConnect(account);
  } catch (err) {
    // Nothing was running any more: the flow is over either way.
  }
  if (current && current.account === account) finish('cancelled', null);
}

function safeUrl(u) {
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/** The panel for the current flow: `[data-testid=connect-waiting]`. */
export function connectPanel(c, providerLabel) {
  const cancel = h(
    'button',
    { type: 'button', class: 'btn', testid: 'connect-cancel', disabled: c.cancelling, onclick: () => cancelConnect() },
    c.cancelling ? 'Cancelling…' : 'Cancel',
  );
  const who = providerLabel ? `${providerLabel} (${c.account})` : c.account;
  let title;
  let body;
  if (c.flow && c.flow.flow === 'device') {
    const open = safeUrl(c.flow.verification_uri_complete) || safeUrl(c.flow.verification_uri);
    const minutes = c.flow.expires_in ? Math.max(1, Math.round(c.flow.expires_in / 60)) : null;
    title = 'Enter this code';
    body = [
      h('p', {}, `Go to the page below and enter the code to connect ${who}.`),
      h('div', { class: 'device-code', testid: 'user-code' }, c.flow.user_code || ''),
      h(
        'p',
        { class: 'device-uri' },
        h('span', { class: 'mono' }, c.flow.verification_uri || ''),
        ' ',
        open ? h('a', { href: open, target: '_blank', rel: 'noopener noreferrer', class: 'link' }, 'Open') : null,
      ),
      minutes ? h('p', { class: 'muted small' }, `The code works for ${minutes} min. This page moves on by itself.`) : null,
    ];
  } else if (c.flow) {
    const open = safeUrl(c.flow.authorization_url);
    title = 'Waiting for the browser…';
    body = [
      h('p', {}, `Approve access for ${who} in the browser window that just opened. This page moves on by itself when you are done.`),
      open
        ? h('p', { class: 'muted small' }, 'No browser window? ', h('a', { href: open, target: '_blank', rel: 'noopener noreferrer', class: 'link' }, 'Open the sign-in page'))
        : null,
    ];
  } else {
    title = c.device ? 'Asking the provider for a code…' : 'Opening the browser…';
    body = [h('p', { class: 'muted' }, `Starting to connect ${who}.`)];
  }
  return h(
    'section',
    { class: 'panel connect-panel', testid: 'connect-waiting', 'aria-live': 'polite', 'data-account': c.account },
    h('div', { class: 'connect-head' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('h2', { class: 'panel-title' }, title)),
    body,
    h('div', { class: 'actions' }, cancel),
  );
}
