// ui/app.js: the page's entry point.
// Owns: the state object, navigation between the four views, the redraw rules, the engine
// event wiring (accounts re-read debounced 150 ms, the log 300 ms), the one per-second timer
// (runs only while the page is visible), the config banner, and `data-ready`.
// * views/accounts.js  cards and their actions     * views/add.js       presets, form, connect
// * views/log.js       the refresh log             * views/settings.js  API keys and preferences
// * connect.js   the consent flow and its panel    * api.js             the only Tauri caller
// * words.js     what statuses mean, in words      * format.js          times and durations
// * dom.js       elements without innerHTML        * dialog.js, toast.js, banner.js
// * asks.js      ask first's prompt (Deny / Allow once / Always)

import * as api from './api.js';
import { debounce } from './dom.js';
import { setConnectListener, onConnectProgress } from './connect.js';
import { drawBanner } from './banner.js';
import { refreshAsks, setUpAsks } from './asks.js';
import { toast } from './toast.js';
import { ATTENTION } from './words.js';
import { createAccountsView } from './views/accounts.js';
import { createAddView } from './views/add.js';
import { createLogView } from './views/log.js';
import { createSettingsView } from './views/settings.js';

const state = {
  view: 'accounts',
  accounts: null, // AccountView[] once loaded
  accountsError: null,
  presets: null,
  presetsError: null,
  config: null, // {path, error}
  reloading: false,
  rowErrors: {}, // account → {message, remedy}: the last failed action on that row
};

const app = {
  state,
  navigate,
  reloadAccounts,
  reloadConfig,
  /** Puts one AccountView (from refresh_now or add_account) into the state at once. */
  setAccount(view) {
    const list = state.accounts ? [...state.accounts] : [];
    const i = list.findIndex((a) => a.name === view.name);
    if (i >= 0) list[i] = view;
    else list.push(view);
    state.accounts = list;
    accountsChanged();
  },
  providerLabel(id) {
    const p = (state.presets || []).find((x) => x.id === id);
    return p ? p.label : id;
  },
  /** Whether the account's preset takes a client secret (unknown providers: assume so). */
  usesSecret(id) {
    const p = (state.presets || []).find((x) => x.id === id);
    return p ? p.needs_secret : true;
  },
  accountProvider(name) {
    const a = (state.accounts || []).find((x) => x.name === name);
    return a ? a.provider : null;
  },
};

const views = {
  accounts: createAccountsView(app),
  add: createAddView(app),
  log: createLogView(app),
  settings: createSettingsView(app),
};

const root = document.documentElement;
const viewSlot = document.getElementById('view');
const main = document.getElementById('main');
const bannerSlot = document.getElementById('banner-slot');
const navButtons = [...document.querySelectorAll('[data-view]')];

function navigate(view) {
  if (!views[view]) return;
  const leaving = views[state.view];
  if (leaving !== views[view] && leaving.hide) leaving.hide();
  state.view = view;
  for (const b of navButtons) {
    if (b.getAttribute('data-view') === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  viewSlot.replaceChildren(views[view].el);
  main.scrollTop = 0;
  views[view].show();
}

// ── accounts ──────────────────────────────────────────────────────────────
let ready = false;

async function readAllAccounts() {
  try {
    const list = await api.accounts();
    state.accounts = Array.isArray(list) ? list : [];
    state.accountsError = null;
    const names = new Set(state.accounts.map((a) => a.name));
    for (const name of Object.keys(state.rowErrors)) if (!names.has(name)) delete state.rowErrors[name];
  } catch (err) {
    state.accountsError = err;
    if (state.accounts === null) state.accounts = [];
  }
  accountsChanged();
  if (!ready) {
    ready = true;
    // When the first list was drawn, in ms since the page began (desktop_bench reads it).
    performance.mark('tokenwarden:first-draw');
    api.windowDrawn(performance.now()).catch(() => {});
    root.setAttribute('data-ready', 'true');
    document.getElementById('app').setAttribute('data-ready', 'true');
  }
}

// Engine events name the account they are about: the window re-reads only those views (with
// 100,000 accounts, a refresh is one view, not the whole list). Anything else, or a burst of
// more than NAMED_AT_MOST, re-reads everything.
const NAMED_AT_MOST = 200;
const named = new Set();
let readAll = false;

// One read at a time, in the order asked: a read that started earlier must not land later
// and put back views older than the ones already drawn.
let reads = Promise.resolve();
function oneAtATime(read) {
  reads = reads.then(read, read);
  return reads;
}

/** Re-reads every account (after the reads already asked for). */
function reloadAccounts() {
  return oneAtATime(readAllAccounts);
}

function reloadNamed() {
  return oneAtATime(readNamed);
}

async function readNamed() {
  if (readAll || state.accounts === null || named.size > NAMED_AT_MOST) {
    readAll = false;
    named.clear();
    return readAllAccounts();
  }
  const names = [...named];
  named.clear();
  if (names.length === 0) return undefined;
  let views;
  try {
    views = await api.accounts(names);
  } catch (_) {
    return readAllAccounts();
  }
  const fresh = new Map((Array.isArray(views) ? views : []).map((v) => [v.name, v]));
  const gone = new Set(names.filter((n) => !fresh.has(n)));
  const list = [];
  for (const a of state.accounts) {
    if (gone.has(a.name)) continue;
    list.push(fresh.get(a.name) || a);
    fresh.delete(a.name);
  }
  // A name the window has not drawn yet (added elsewhere) comes with a full read, in config order.
  if (fresh.size > 0) return readAllAccounts();
  state.accounts = list;
  for (const name of gone) delete state.rowErrors[name];
  accountsChanged();
  return undefined;
}

const reloadNamedSoon = debounce(reloadNamed, 150);

/** Re-reads every account soon (coalesced with the named ones). */
function reloadAccountsSoon() {
  readAll = true;
  reloadNamedSoon();
}

function accountSoon(name) {
  if (typeof name === 'string') named.add(name);
  else readAll = true;
  reloadNamedSoon();
}
const reloadLogSoon = debounce(() => state.view === 'log' && views.log.reload(), 300);

function accountsChanged() {
  if (state.view === 'accounts') views.accounts.update();
  views.log.accountsChanged();
  drawSummary();
}

/** The Accounts nav badge and the sidebar line: how many want attention. */
function drawSummary() {
  const list = state.accounts || [];
  const bad = list.filter((a) => ATTENTION.has(a.severity)).length;
  const badge = document.getElementById('nav-attention');
  badge.hidden = bad === 0;
  badge.textContent = String(bad);
  badge.setAttribute('aria-label', `${bad} need attention`);
  const summary = document.getElementById('health-summary');
  const tone = list.length === 0 ? 'none' : bad === 0 ? 'ok' : list.some((a) => a.severity === 'bad') ? 'bad' : 'warn';
  summary.setAttribute('data-tone', tone);
  const text = summary.querySelector('.summary-text');
  if (list.length === 0) text.textContent = 'No accounts yet';
  else if (bad === 0) text.textContent = list.length === 1 ? '1 account, all well' : `${list.length} accounts, all well`;
  else text.textContent = bad === 1 ? '1 account needs attention' : `${bad} accounts need attention`;
}

// ── presets ──────────────────────────────────────────────────────────────
async function loadPresets() {
  try {
    state.presets = await api.presets();
    state.presetsError = null;
  } catch (err) {
    state.presetsError = err;
  }
  views.add.presetsLoaded();
  if (state.view === 'accounts') views.accounts.update(); // provider labels
}

// ── config ───────────────────────────────────────────────────────────────
async function checkConfig() {
  try {
    state.config = await api.configStatus();
  } catch (err) {
    state.config = { path: state.config ? state.config.path : null, error: { message: err.message, line: err.remedy && err.remedy.line } };
  }
  drawConfig();
}

function drawConfig() {
  drawBanner(bannerSlot, state.config, reloadConfig, state.reloading);
  views.settings.configChanged();
}

async function reloadConfig() {
  state.reloading = true;
  drawConfig();
  let failure = null;
  try {
    const res = await api.reloadConfig();
    const n = res && typeof res.accounts === 'number' ? res.accounts : null;
    toast(n === null ? 'Config reloaded' : `Config reloaded: ${n} ${n === 1 ? 'account' : 'accounts'}`, 'ok');
  } catch (err) {
    failure = err;
  }
  state.reloading = false;
  await checkConfig();
  if (failure && !(state.config && state.config.error)) {
    state.config = { ...(state.config || {}), error: { message: failure.message, line: failure.remedy && failure.remedy.line } };
    drawConfig();
  }
  await reloadAccounts();
}

// ── connect flows ────────────────────────────────────────────────────────
setConnectListener((current, ended) => {
  views.add.connectChanged(ended);
  if (ended) {
    if (ended.stage === 'completed') {
      delete state.rowErrors[ended.account];
      toast(`Connected ${ended.account}`, 'ok');
      navigate('accounts');
      reloadAccounts();
    } else if (ended.stage === 'failed') {
      state.rowErrors[ended.account] = { message: ended.message || 'Connecting failed.', remedy: null };
    }
  }
  if (state.view === 'accounts') views.accounts.update();
});

// ── the per-second tick: only while someone can see it ───────────────────
let timer = null;

function tick() {
  if (state.view === 'accounts') views.accounts.tick();
}

function startTicking() {
  if (timer === null) timer = setInterval(tick, 1000);
}

function stopTicking() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    tick();
    startTicking();
    reloadAccountsSoon(); // once on return, not per tick
  } else {
    stopTicking();
  }
});

// ── events ───────────────────────────────────────────────────────────────
function onEngineEvent(ev) {
  switch (ev.kind) {
    case 'connect_progress':
      onConnectProgress(ev);
      break;
    case 'refreshed':
    case 'refresh_failed':
    case 'status_changed':
      reloadLogSoon();
      break;
    case 'config_reloaded':
      checkConfig();
      break;
    case 'ask_started':
    case 'ask_ended':
      refreshAsks();
      if (state.view === 'settings') views.settings.approvalsChanged();
      return;
    case 'keychain_write_failed':
      toast(`Could not save the ${ev.account} token to the keychain; it is kept in memory and saving is retried.`, 'warn', 7000);
      break;
    case 'reports_refused':
      toast(ev.message || `Reports for ${ev.account} are refused for a while.`, 'warn', 7000);
      break;
    default:
      break;
  }
  accountSoon(ev.kind === 'config_reloaded' ? null : ev.account);
}

async function focusAccount(name) {
  if (typeof name !== 'string') return;
  navigate('accounts');
  if (state.accounts === null || !state.accounts.some((a) => a.name === name)) await reloadAccounts();
  requestAnimationFrame(() => views.accounts.focusAccount(name));
}

// ── start ────────────────────────────────────────────────────────────────
for (const b of navButtons) {
  b.addEventListener('click', () => {
    const view = b.getAttribute('data-view');
    // "Add account" starts from the preset grid, unless a connect is still waiting.
    if (view === 'add' && !views.add.el.querySelector('[data-testid=connect-waiting]')) views.add.reset();
    navigate(view);
  });
}

async function start() {
  navigate('accounts');
  try {
    await Promise.all([api.onEngineEvent(onEngineEvent), api.onFocusAccount(focusAccount)]);
  } catch (err) {
    toast(`Live updates are off: ${(err && err.message) || err}`, 'warn', 8000);
  }
  setUpAsks();
  checkConfig();
  loadPresets();
  refreshAsks();
  await reloadAccounts();
  if (document.visibilityState === 'visible') startTicking();
}

start();
