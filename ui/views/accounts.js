// ui/views/accounts.js: the Accounts view, one card per account.
// Owns: the cards, their actions (Copy token, Refresh now, Connect/Reconnect, Remove), the
// empty state, search by name, and the per-second tick that rewrites countdowns and "5 min
// ago" in place. Data comes from app.state.accounts; nothing here calls the backend on a tick.
// Long lists draw only the cards near the viewport (virtual.js).

import * as api from '../api.js';
import { h, icon, keepFocus, replace } from '../dom.js';
import { countdown, parseTime, relative, upcoming } from '../format.js';
import { statusLabel, statusSentence, remedyText } from '../words.js';
import { connecting, connectPanel, startConnect } from '../connect.js';
import { confirmDialog, secretDialog } from '../dialog.js';
import { toast } from '../toast.js';
import { createVirtualList } from '../virtual.js';

/** From how many accounts the view offers a search box. */
const SEARCH_FROM = 8;

/** The engine's `can_copy`, until the token it speaks of expires (a view is a snapshot). */
export function canCopy(a, now) {
  const t = parseTime(a.expires_at);
  return a.can_copy === true && t !== null && t > now;
}

function canConnect(a) {
  if (a.status === 'needs_reconnect') return a.connects_with !== 'none';
  if (a.status === 'not_connected') return a.connects_with === 'browser' || a.connects_with === 'device';
  return Boolean(a.remedy && a.remedy.kind === 'reconnect' && a.connects_with !== 'none');
}

export function createAccountsView(app) {
  const el = h('section', { class: 'view-accounts', 'aria-labelledby': 'accounts-title' });
  const list = h('div', { class: 'account-list' });
  const top = h('div', { class: 'view-top' });
  const header = h(
    'header',
    { class: 'view-header' },
    h('div', {}, h('h1', { id: 'accounts-title' }, 'Accounts'), h('p', { class: 'subtitle' }, 'Tokens Tokenwarden keeps fresh for you and your programs.')),
  );
  const search = h('input', {
    type: 'search',
    class: 'search',
    testid: 'search',
    placeholder: 'Search by name',
    'aria-label': 'Search accounts by name',
    autocomplete: 'off',
    spellcheck: 'false',
    oninput: () => update(),
    onkeydown: (e) => {
      if (e.key === 'Escape' && search.value) {
        e.preventDefault();
        search.value = '';
        update();
      }
    },
  });
  const found = h('p', { class: 'muted search-count', testid: 'search-count', 'aria-live': 'polite' });
  const searchBar = h('div', { class: 'search-bar', hidden: true }, search, found);
  el.append(header, searchBar, top, list);
  const rows = createVirtualList({
    list,
    scroller: document.getElementById('main'),
    key: (a) => a.name,
    draw: (a, old) => row(a, Date.now(), connecting(), old),
  });

  // The accounts whose name holds what is typed, kept for the list and the query it came
  // from, so a tick or a redraw does not filter 100,000 names again.
  let shown = { from: null, query: null, list: [] };
  function matching(accounts) {
    const query = search.value.trim().toLowerCase();
    if (shown.from !== accounts || shown.query !== query) {
      shown = { from: accounts, query, list: query ? accounts.filter((a) => a.name.includes(query)) : accounts };
    }
    return shown.list;
  }

  const busy = new Map(); // name → 'refresh' | 'copy' | 'remove' | 'secret' | 'check'
  const findings = new Map(); // name → doctor's findings, shown until the card is checked again

  async function check(a) {
    setBusy(a.name, 'check');
    try {
      findings.set(a.name, await api.diagnose(a.name));
    } catch (err) {
      showError(a.name, err);
    } finally {
      setBusy(a.name, null);
    }
  }

  function doctorList(name) {
    const list = findings.get(name);
    if (!list) return null;
    const mark = { ok: '✓', warn: '!', fail: '✕' };
    return h(
      'div',
      { class: 'findings', testid: 'findings' },
      h('div', { class: 'findings-head' }, h('span', { class: 'used-by-label' }, 'Check'), h('button', { type: 'button', class: 'btn btn-link btn-small', testid: 'findings-close', onclick: () => { findings.delete(name); update(); } }, 'Hide')),
      h(
        'ul',
        {},
        list.map((f) =>
          h(
            'li',
            { class: `finding finding-${f.level}`, testid: 'finding', 'data-check': f.check, 'data-level': f.level },
            h('span', { class: 'finding-mark', 'aria-label': f.level }, mark[f.level] || '•'),
            h('span', { class: 'finding-check' }, f.check.replace(`${name}: `, '')),
            h('span', { class: 'finding-what' }, f.what, f.remedy ? h('span', { class: 'finding-remedy' }, `→ ${f.remedy}`) : null),
          ),
        ),
      ),
    );
  }

  // Who took each account's tokens (the engine's ledger), read again at most every few
  // seconds while the view is drawn: a hint for the cards, never on the per-second tick.
  let takers = {}; // account → rows, most recent first
  let takersRead = 0;
  let takersReading = false;
  let takersLater = null;
  async function readTakers() {
    const wait = takersRead + 3000 - Date.now();
    if (wait > 0) {
      // Asked again too soon: read once when the wait is over, so the last change shows.
      takersLater ||= setTimeout(() => {
        takersLater = null;
        readTakers();
      }, wait);
      return;
    }
    if (takersReading) return;
    takersReading = true;
    try {
      const rows = await api.takers();
      const next = {};
      for (const r of rows || []) (next[r.account] ||= []).push(r);
      takersRead = Date.now();
      if (JSON.stringify(next) !== JSON.stringify(takers)) {
        takers = next;
        update();
      }
    } catch (_) {
      // The cards go on without it; the next update asks again.
    } finally {
      takersReading = false;
    }
  }

  function programName(r) {
    const base = (p) => (p ? p.split('/').pop() : null);
    const name = base(r.exe) || r.command || 'unknown program';
    return r.detail ? `${name} ${base(r.detail)}` : name;
  }

  function usedBy(name, now) {
    const rows = takers[name] || [];
    if (rows.length === 0) return null;
    const shown = rows.slice(0, 3).map((r) =>
      h(
        'li',
        {
          testid: 'taker',
          'data-exe': r.exe || '',
          title: [r.exe, r.detail, r.pid ? `pid ${r.pid}` : null, r.key ? `key ${r.key}` : null, `via ${r.via}`].filter(Boolean).join(' · '),
        },
        h('span', { class: 'taker-name' }, programName(r)),
        h('span', { class: 'muted' }, ` ${r.count}× · ${relative(r.last_at, now)}`),
      ),
    );
    const more = rows.length > 3 ? h('li', { class: 'muted' }, `and ${rows.length - 3} more (tokenwarden who ${name})`) : null;
    return h('div', { class: 'used-by', testid: 'used-by' }, h('span', { class: 'used-by-label' }, 'Used by'), h('ul', {}, shown, more));
  }

  function setBusy(name, what) {
    if (what) busy.set(name, what);
    else busy.delete(name);
    update();
  }

  function showError(name, err) {
    app.state.rowErrors[name] = { message: err.message, remedy: err.remedy || null };
    update();
  }

  async function copy(a) {
    setBusy(a.name, 'copy');
    try {
      const res = await api.copyToken(a.name);
      delete app.state.rowErrors[a.name];
      const secs = res && typeof res.clear_after_secs === 'number' ? res.clear_after_secs : 0;
      toast(secs > 0 ? `Copied ${a.name} token — clipboard clears in ${secs} s` : `Copied ${a.name} token`, 'ok');
    } catch (err) {
      showError(a.name, err);
    } finally {
      setBusy(a.name, null);
    }
  }

  async function refresh(a) {
    setBusy(a.name, 'refresh');
    try {
      const view = await api.refreshNow(a.name);
      delete app.state.rowErrors[a.name];
      if (view && view.name) app.setAccount(view);
    } catch (err) {
      showError(a.name, err);
    } finally {
      setBusy(a.name, null);
    }
  }

  function connect(a) {
    delete app.state.rowErrors[a.name];
    startConnect(a.name, a.connects_with === 'device', 'accounts');
  }

  async function remove(a) {
    const ok = await confirmDialog({
      title: `Remove ${a.name}?`,
      body: 'It is taken out of the config file, its tokens are revoked where the provider allows it, and its secrets are deleted from the keychain.',
      confirm: 'Remove',
      danger: true,
    });
    if (!ok) return;
    setBusy(a.name, 'remove');
    try {
      const res = await api.removeAccount(a.name);
      delete app.state.rowErrors[a.name];
      toast(`Removed ${a.name}`, 'ok');
      if (res && res.warning) toast(res.warning, 'warn', 8000);
      await app.reloadAccounts();
    } catch (err) {
      showError(a.name, err);
    } finally {
      setBusy(a.name, null);
    }
  }

  async function setSecret(a) {
    const secret = await secretDialog({
      title: `Client secret for ${a.name}`,
      body: 'Paste the client secret from the provider’s developer console. It goes straight into the system keychain and replaces the one stored there.',
      label: 'Client secret',
    });
    if (secret === null) return;
    setBusy(a.name, 'secret');
    try {
      const view = await api.setClientSecret(a.name, secret);
      delete app.state.rowErrors[a.name];
      if (view && view.name) app.setAccount(view);
      toast(`Stored ${a.name}’s client secret in the keychain`, 'ok');
    } catch (err) {
      showError(a.name, err);
    } finally {
      setBusy(a.name, null);
    }
  }

  /** The remedy in words, plus a button where the window can do it. */
  function remedyControls(a, remedy, now, withButton) {
    const text = remedyText(remedy, a.name, now);
    if (!text) return null;
    let button = null;
    if (withButton && remedy.kind === 'reconnect' && a.connects_with !== 'none' && !canConnect(a)) {
      button = h('button', { type: 'button', class: 'btn btn-small', disabled: Boolean(connecting()), onclick: () => connect(a) }, 'Reconnect');
    } else if (withButton && remedy.kind === 'set_secret') {
      button = h('button', { type: 'button', class: 'btn btn-small', onclick: () => setSecret(a) }, 'Set client secret');
    } else if (withButton && remedy.kind === 'fix_config') {
      button = h('button', { type: 'button', class: 'btn btn-small', onclick: () => app.reloadConfig() }, 'Reload config');
    } else if (withButton && remedy.kind === 'unlock_keychain') {
      button = h('button', { type: 'button', class: 'btn btn-small', onclick: () => refresh(a) }, 'Try again');
    }
    return h('p', { class: 'hint' }, h('span', {}, text), button);
  }

  function card(a, now) {
    const doing = busy.get(a.name);
    const rowError = app.state.rowErrors[a.name];
    const provider = app.providerLabel(a.provider);
    const actions = h(
      'div',
      { class: 'account-actions' },
      h(
        'button',
        { type: 'button', class: 'btn', testid: 'copy', disabled: !canCopy(a, now) || doing === 'copy', onclick: () => copy(a) },
        icon(['M9 9h10v10H9z', 'M5 15V5h10']),
        'Copy token',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'btn',
          testid: 'refresh',
          disabled: Boolean(doing) || (a.status === 'not_connected' && a.connects_with !== 'none'),
          onclick: () => refresh(a),
        },
        icon(['M20 11a8 8 0 1 0-2.3 5.7', 'M20 4v7h-7']),
        doing === 'refresh' ? 'Refreshing…' : 'Refresh now',
      ),
      canConnect(a)
        ? h(
            'button',
            { type: 'button', class: 'btn btn-primary', testid: 'connect', disabled: Boolean(connecting()), onclick: () => connect(a) },
            a.status === 'not_connected' ? 'Connect' : 'Reconnect',
          )
        : null,
      h(
        'button',
        { type: 'button', class: 'btn btn-quiet', testid: 'check', disabled: doing === 'check', title: 'What tokenwarden doctor finds: the token tried on the API, the redirect, the clock', onclick: () => check(a) },
        doing === 'check' ? 'Checking…' : 'Check',
      ),
      h('span', { class: 'spacer' }),
      app.usesSecret(a.provider)
        ? h('button', { type: 'button', class: 'btn btn-quiet', testid: 'set-secret', disabled: doing === 'secret', onclick: () => setSecret(a) }, 'Client secret…')
        : null,
      h('button', { type: 'button', class: 'btn btn-quiet-danger', testid: 'remove', disabled: doing === 'remove', onclick: () => remove(a) }, 'Remove'),
    );
    // The status sentence already covers reconnect, set_secret and the retry time.
    const extra = a.remedy && (['fix_config', 'unlock_keychain', 'check_store', 'stop_other_engine'].includes(a.remedy.kind) || (a.remedy.kind === 'wait_until' && a.status !== 'retrying'));
    const remedy = extra ? remedyControls(a, a.remedy, now, true) : null;
    return h(
      'article',
      { class: `account status-${a.status}`, testid: 'account-row', 'data-account': a.name, 'data-status': a.status, 'data-severity': a.severity, tabindex: '-1' },
      h(
        'header',
        { class: 'account-head' },
        h('div', { class: 'account-title' }, h('h2', { class: 'account-name' }, a.name), provider && provider !== a.name ? h('span', { class: 'account-provider' }, provider) : null),
        h('span', { class: `badge badge-${a.status}`, testid: 'status', 'data-status': a.status }, h('span', { class: 'dot', 'aria-hidden': 'true' }), statusLabel(a.status)),
      ),
      h('p', { class: 'account-sentence', 'data-role': 'sentence' }, statusSentence(a, now)),
      h(
        'dl',
        { class: 'account-meta' },
        h('div', {}, h('dt', {}, 'Expires in'), h('dd', { testid: 'countdown', class: 'num' }, countdown(a.expires_at, now))),
        h('div', {}, h('dt', {}, 'Last refresh'), h('dd', { testid: 'last-refresh' }, relative(a.last_refresh, now))),
        h('div', {}, h('dt', {}, a.status === 'retrying' ? 'Next try' : 'Next refresh'), h('dd', { testid: 'next-refresh' }, upcoming(a.next_refresh, now))),
        a.status === 'retrying' && a.attempt > 0 ? h('div', {}, h('dt', {}, 'Attempt'), h('dd', { class: 'num' }, String(a.attempt))) : null,
        a.refresh_token_expires_at ? h('div', {}, h('dt', {}, 'Reconnect by'), h('dd', {}, upcoming(a.refresh_token_expires_at, now))) : null,
        a.quota
          ? h(
              'div',
              { title: 'WeChat allows this many token fetches per appid each day (reset at midnight Beijing time); past 95%, refreshes you ask for wait.' },
              h('dt', {}, 'Fetches today'),
              h('dd', { testid: 'quota', class: a.quota.used * 100 >= a.quota.limit * 80 ? 'num quota-high' : 'num' }, `${a.quota.used} of ${a.quota.limit}`),
            )
          : null,
      ),
      usedBy(a.name, now),
      a.unsaved ? h('p', { class: 'note note-warn' }, 'The newest token is only in memory: saving it to the keychain failed and is being retried.') : null,
      a.last_error ? h('p', { class: a.status === 'retrying' ? 'note note-warn' : 'note note-error' }, h('span', { class: 'note-label' }, 'Last error'), a.last_error) : null,
      remedy,
      doctorList(a.name),
      rowError
        ? h('div', { class: 'note note-error', role: 'alert' }, rowError.message, remedyControls(a, rowError.remedy, now, true))
        : null,
      actions,
    );
  }

  function emptyState() {
    return h(
      'div',
      { class: 'empty', testid: 'empty-state' },
      h('div', { class: 'empty-icon' }, icon(['M8 8a4 4 0 1 0 0 8a4 4 0 0 0 0-8z', 'M12 12h9', 'M18 12v3', 'M21 12v2'])),
      h('h2', {}, 'No accounts yet'),
      h('p', {}, 'Add your first account: pick a provider such as Fitbit, paste its client id and secret, then connect in the browser.'),
      h('button', { type: 'button', class: 'btn btn-primary btn-large', onclick: () => app.navigate('add') }, 'Add account'),
    );
  }

  function update() {
    readTakers();
    const c = connecting();
    replace(top, c ? connectPanel(c, app.providerLabel(app.accountProvider(c.account))) : null);
    keepFocus(list, () => {
      const accounts = app.state.accounts;
      const plain = (node) => {
        list.classList.remove('virtual');
        replace(list, node);
      };
      if (accounts === null) plain(h('p', { class: 'muted loading' }, 'Loading…'));
      else if (app.state.accountsError && accounts.length === 0) {
        plain(h('div', { class: 'note note-error', role: 'alert' }, app.state.accountsError.message));
      } else if (accounts.length === 0) plain(emptyState());
      else {
        const matched = matching(accounts);
        rows.render(matched);
        drawSearch(accounts.length, matched.length);
      }
    });
    const many = app.state.accounts !== null && app.state.accounts.length >= SEARCH_FROM;
    searchBar.hidden = !many && !search.value;
  }

  function drawSearch(all, matched) {
    const query = search.value.trim();
    if (!query) found.textContent = '';
    else if (matched === 0) found.textContent = `No account name contains “${query}”.`;
    else found.textContent = `${matched.toLocaleString('en')} of ${all.toLocaleString('en')} accounts`;
  }

  // What each row was drawn from: a row whose inputs did not change is kept as it is.
  // Rebuilding every row on every engine event lost clicks: a button pressed while another
  // account's event arrived was replaced between mouse down and up.
  const drawnFrom = new WeakMap();

  function row(a, now, flow, old) {
    const inputs = JSON.stringify([a, busy.get(a.name) || null, app.state.rowErrors[a.name] || null, flow || null, takers[a.name] || null]);
    if (old && drawnFrom.get(old) === inputs) return old;
    const fresh = card(a, now);
    drawnFrom.set(fresh, inputs);
    return fresh;
  }

  // The accounts by name, made again only when the list is a new one (not on every tick).
  let index = { from: null, byName: new Map() };
  function indexed(accounts) {
    if (index.from !== accounts) index = { from: accounts, byName: new Map(accounts.map((a) => [a.name, a])) };
    return index.byName;
  }

  /** Rewrites the live parts in place: no rebuild, no backend call. */
  function tick() {
    const now = Date.now();
    const byName = indexed(app.state.accounts || []);
    for (const row of list.querySelectorAll('[data-testid=account-row]')) {
      const a = byName.get(row.getAttribute('data-account'));
      if (!a) continue;
      setText(row.querySelector('[data-role=sentence]'), statusSentence(a, now));
      setText(row.querySelector('[data-testid=countdown]'), countdown(a.expires_at, now));
      setText(row.querySelector('[data-testid=last-refresh]'), relative(a.last_refresh, now));
      setText(row.querySelector('[data-testid=next-refresh]'), upcoming(a.next_refresh, now));
      const copyBtn = row.querySelector('[data-testid=copy]');
      if (copyBtn && busy.get(a.name) !== 'copy') copyBtn.disabled = !canCopy(a, now);
    }
  }

  function focusAccount(name) {
    if (search.value && !matching(app.state.accounts || []).some((a) => a.name === name)) {
      search.value = '';
      update();
    }
    rows.scrollTo(name);
    const row = [...list.querySelectorAll('[data-testid=account-row]')].find((r) => r.getAttribute('data-account') === name);
    if (!row) return;
    row.scrollIntoView({ block: 'center', behavior: 'smooth' });
    row.focus({ preventScroll: true });
    row.classList.remove('highlight');
    void row.offsetWidth; // restart the animation
    row.classList.add('highlight');
    setTimeout(() => row.classList.remove('highlight'), 2400);
  }

  return { el, show: update, update, tick, focusAccount };
}

function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}
