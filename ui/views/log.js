// ui/views/log.js: the Refresh log, newest first, with an account and an outcome filter.
// Owns: loading `history` (the account filter goes to the engine, the outcome filter is applied
// here), the rows (a failure's reason on a second line), and the reload when refresh events arrive (debounced by the app).

import * as api from '../api.js';
import { h, keepFocus, replace } from '../dom.js';
import { duration, logTime } from '../format.js';
import { OUTCOME, TRIGGER } from '../words.js';

const LIMIT = 200;

export function createLogView(app) {
  const el = h('section', { class: 'view-log', 'aria-labelledby': 'log-title' });
  let entries = null;
  let error = null;
  let account = '';
  let outcome = '';
  let seq = 0;

  const accountSelect = h('select', {
    id: 'log-filter-account', testid: 'log-filter-account',
    onchange: () => { account = accountSelect.value; load(); },
  });
  const outcomeSelect = h(
    'select',
    { id: 'log-filter-outcome', testid: 'log-filter-outcome', onchange: () => { outcome = outcomeSelect.value; draw(); } },
    h('option', { value: '' }, 'All outcomes'),
    Object.entries(OUTCOME).map(([value, label]) => h('option', { value }, label)),
  );
  const table = h('div', { class: 'log-body' });
  el.append(
    h(
      'header',
      { class: 'view-header' },
      h('div', {}, h('h1', { id: 'log-title' }, 'Refresh log'), h('p', { class: 'subtitle' }, 'Every refresh, newest first.')),
    ),
    h(
      'div',
      { class: 'filters' },
      h('label', { class: 'filter' }, h('span', {}, 'Account'), accountSelect),
      h('label', { class: 'filter' }, h('span', {}, 'Outcome'), outcomeSelect),
    ),
    table,
  );

  function fillAccounts() {
    const names = (app.state.accounts || []).map((a) => a.name);
    if (account && !names.includes(account)) names.push(account);
    const current = [...accountSelect.options].map((o) => o.value).join('\n');
    const wanted = ['', ...names].join('\n');
    if (current === wanted) return;
    replace(accountSelect, h('option', { value: '' }, 'All accounts'), names.map((n) => h('option', { value: n }, n)));
    accountSelect.value = account;
  }

  async function load() {
    const mine = ++seq;
    try {
      const list = await api.history(account || null, LIMIT);
      if (mine !== seq) return;
      entries = Array.isArray(list) ? list : [];
      error = null;
    } catch (err) {
      if (mine !== seq) return;
      error = err;
    }
    draw();
  }

  function row(e, now) {
    const failed = e.outcome !== 'ok';
    const reason = failed ? e.message || e.error_code || '' : '';
    return h(
      'div',
      { role: 'row', class: failed ? 'log-row failed' : 'log-row', testid: 'log-row', 'data-account': e.account, 'data-outcome': e.outcome },
      h('span', { role: 'cell', class: 'num' }, logTime(e.at, now)),
      h('span', { role: 'cell', class: 'strong ellipsis', title: e.account }, e.account),
      h('span', { role: 'cell', class: 'muted' }, TRIGGER[e.trigger] || e.trigger || ''),
      h('span', { role: 'cell' }, h('span', { class: `badge badge-outcome-${e.outcome}` }, h('span', { class: 'dot', 'aria-hidden': 'true' }), OUTCOME[e.outcome] || e.outcome)),
      h('span', { role: 'cell', class: 'num right muted' }, duration(e.duration_ms)),
      reason ? h('span', { role: 'cell', class: 'log-reason' }, reason) : null,
    );
  }

  function draw() {
    fillAccounts();
    const now = Date.now();
    keepFocus(table, () => {
      if (error) return replace(table, h('div', { class: 'note note-error', role: 'alert' }, error.message));
      if (entries === null) return replace(table, h('p', { class: 'muted loading' }, 'Loading…'));
      const shown = entries.filter((e) => !outcome || e.outcome === outcome);
      if (shown.length === 0) {
        const what = entries.length === 0 ? 'No refreshes yet.' : 'No refreshes match these filters.';
        return replace(table, h('div', { class: 'empty empty-small' }, h('p', {}, what)));
      }
      replace(
        table,
        h(
          'div',
          { class: 'log-table', role: 'table', 'aria-label': 'Refresh log' },
          h(
            'div',
            { role: 'row', class: 'log-row log-head' },
            ['Time', 'Account', 'Trigger', 'Outcome', 'Duration'].map((t, i) => h('span', { role: 'columnheader', class: i === 4 ? 'right' : null }, t)),
          ),
          shown.map((e) => row(e, now)),
        ),
      );
    });
  }

  return {
    el,
    show: () => { fillAccounts(); draw(); load(); },
    reload: load,
    // Only while shown: with 100,000 accounts the filter's options are not made for nothing.
    accountsChanged: () => { if (el.isConnected) fillAccounts(); },
  };
}
