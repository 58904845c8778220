// ui/views/settings.js: Settings: the API address, API keys, the three preferences, and where
// the app lives (tray or window, and why; Quit when there is no tray to quit from).
// Owns: loading `settings`, `api_keys` and the config path; saving each change at once with
// `save_settings`; creating a key (shown once, because the user asked for it) and revoking one;
// ask first: the switch ([api] ask_first in the config) and the programs allowed, revocable.

import * as api from '../api.js';
import { h, keepFocus, replace } from '../dom.js';
import { date } from '../format.js';
import { confirmDialog } from '../dialog.js';
import { programWords } from '../asks.js';
import { toast } from '../toast.js';

export function createSettingsView(app) {
  const el = h('section', { class: 'view-settings', 'aria-labelledby': 'settings-title' });
  const body = h('div', { class: 'settings-body' });
  el.append(
    h('header', { class: 'view-header' }, h('div', {}, h('h1', { id: 'settings-title' }, 'Settings'), h('p', { class: 'subtitle' }, 'Changes are saved as you make them.'))),
    body,
  );

  let settings = null;
  let keys = null;
  let approvals = null; // {ask_first, ask_timeout_secs, approvals, allowed_in_config}
  let askError = null;
  let error = null;
  let keyError = null;
  let newKey = null; // {label, key}: shown once, dropped when the view is left
  let saving = false;
  let savedAt = 0;

  async function load() {
    try {
      [settings, keys] = await Promise.all([api.settings(), api.apiKeys()]);
      error = null;
    } catch (err) {
      error = err;
    }
    await loadApprovals();
  }

  async function loadApprovals() {
    try {
      approvals = await api.approvals();
      askError = null;
    } catch (err) {
      askError = err;
    }
    draw();
  }

  async function setAskFirst(on) {
    try {
      approvals = await api.setAskFirst(on);
      askError = null;
      toast(on ? 'Programs are asked about from now on' : 'Programs are no longer asked about', 'ok');
    } catch (err) {
      askError = err;
    }
    draw();
  }

  async function revokeApproval(a) {
    const ok = await confirmDialog({
      title: `Stop allowing ${a.exe.split('/').pop()} always?`,
      body: `The next time ${a.exe} asks for ${a.account}’s token, you are asked again.`,
      confirm: 'Revoke',
      danger: true,
    });
    if (!ok) return;
    try {
      approvals = await api.revokeApproval(a.exe, a.account);
      askError = null;
      toast(`Revoked: ${a.exe} for ${a.account}`, 'ok');
    } catch (err) {
      askError = err;
    }
    draw();
  }

  function askSection() {
    if (!approvals) return askError ? section('Ask first', null, h('div', { class: 'note note-error', role: 'alert' }, askError.message)) : null;
    const list = approvals.approvals.length
      ? h(
          'ul',
          { class: 'key-list' },
          approvals.approvals.map((a) =>
            h(
              'li',
              { class: 'key-row', testid: 'approval-row', 'data-exe': a.exe, 'data-account': a.account },
              h('span', { class: 'key-label' }, programWords({ exe: a.exe }).name),
              h('span', { class: 'muted small mono' }, a.exe),
              h('span', { class: 'muted small' }, `${a.account} · since ${date(a.since)}`),
              h('button', { type: 'button', class: 'btn btn-small btn-quiet-danger', testid: 'approval-revoke', onclick: () => revokeApproval(a) }, 'Revoke'),
            ),
          ),
        )
      : h('p', { class: 'muted small', testid: 'approvals-none' }, 'No program is allowed always yet.');
    const configured = approvals.allowed_in_config.length
      ? h(
          'p',
          { class: 'field-help' },
          'Allowed in the config file ([api.allow]): ',
          approvals.allowed_in_config.map((c) => `${c.exe} (${c.accounts.length ? c.accounts.join(', ') : 'every account'})`).join('; '),
        )
      : null;
    return section(
      'Ask first',
      'Which programs may take tokens. The Unix socket and the API tell Tokenwarden who asks; a program of yours could still read the keychain itself.',
      h(
        'label',
        { class: 'toggle-row', for: 'setting-ask-first' },
        h('input', { id: 'setting-ask-first', testid: 'setting-ask-first', type: 'checkbox', checked: Boolean(approvals.ask_first), onchange: (e) => setAskFirst(e.target.checked) }),
        h(
          'span',
          { class: 'toggle-text' },
          h('span', { class: 'toggle-title' }, 'Ask before a new program takes a token'),
          h('span', { class: 'field-help' }, `Its request waits up to ${approvals.ask_timeout_secs} s for your answer, then is refused ([api] ask_first, ask_timeout).`),
        ),
      ),
      h('h3', { class: 'toggle-title' }, 'Allowed always'),
      list,
      configured,
      askError ? h('div', { class: 'note note-error', role: 'alert' }, askError.message) : null,
    );
  }

  async function save(patch) {
    const before = settings;
    settings = { ...settings, ...patch };
    saving = true;
    draw();
    try {
      settings = await api.saveSettings(settings);
      error = null;
      savedAt = Date.now();
    } catch (err) {
      settings = before;
      error = err;
    }
    saving = false;
    draw();
  }

  async function createKey(label) {
    keyError = null;
    if (!label) {
      keyError = { message: 'Give the key a label, for example the name of the program that uses it.' };
      return draw();
    }
    if ((keys || []).some((k) => k.label === label)) {
      keyError = { message: `A key labelled ${label} already exists. Pick another label.` };
      return draw();
    }
    try {
      newKey = await api.createApiKey(label);
      keys = await api.apiKeys();
    } catch (err) {
      keyError = err;
    }
    draw();
  }

  async function revoke(label) {
    const ok = await confirmDialog({
      title: `Revoke the key ${label}?`,
      body: 'Programs that use it are refused from now on. This cannot be undone.',
      confirm: 'Revoke',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.revokeApiKey(label);
      if (newKey && newKey.label === label) newKey = null;
      keys = await api.apiKeys();
      keyError = null;
      toast(`Revoked ${label}`, 'ok');
    } catch (err) {
      keyError = err;
    }
    draw();
  }

  function section(title, desc, ...content) {
    return h('section', { class: 'panel settings-section' }, h('h2', { class: 'panel-title' }, title), desc ? h('p', { class: 'panel-desc' }, desc) : null, content);
  }

  function apiSection() {
    const path = app.state.config && app.state.config.path;
    return section(
      'Local API',
      null,
      h('div', { class: 'kv' }, h('span', { class: 'kv-key' }, 'Address'), h('code', { class: 'kv-value', testid: 'setting-api-listen' }, settings.api_listen || '—')),
      h('p', { class: 'field-help' }, 'Set in the config file ([api] listen)', path ? ': ' : '.', path ? h('span', { class: 'mono' }, path) : null),
    );
  }

  function keysSection() {
    const labelInput = h('input', { id: 'apikey-label', testid: 'apikey-label', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. backup-script' });
    const createForm = h(
      'form',
      { class: 'inline-form', onsubmit: (e) => { e.preventDefault(); createKey(labelInput.value.trim()); } },
      h('label', { for: 'apikey-label', class: 'sr-only' }, 'Label for a new key'),
      labelInput,
      h('button', { type: 'submit', class: 'btn', testid: 'apikey-create' }, 'Create key'),
    );
    const list = keys && keys.length
      ? h(
          'ul',
          { class: 'key-list' },
          keys.map((k) =>
            h(
              'li',
              { class: 'key-row', testid: 'apikey-row', 'data-label': k.label },
              h('span', { class: 'key-label' }, k.label),
              h('span', { class: 'muted small' }, `Created ${date(k.created_at)}`),
              h('button', { type: 'button', class: 'btn btn-small btn-quiet-danger', testid: 'apikey-revoke', onclick: () => revoke(k.label) }, 'Revoke'),
            ),
          ),
        )
      : h('p', { class: 'muted small' }, 'No keys yet. Create one for each program that reads tokens.');
    const shown = newKey
      ? h(
          'div',
          { class: 'new-key', role: 'status' },
          h('p', { class: 'new-key-title' }, `New key for ${newKey.label}`),
          h(
            'div',
            { class: 'new-key-row' },
            h('code', { class: 'new-key-value', testid: 'apikey-new' }, newKey.key),
            h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyKey(newKey.key) }, 'Copy'),
          ),
          h('p', { class: 'field-help' }, 'This key is shown only this once. Store it with the program that uses it.'),
          h('button', { type: 'button', class: 'btn btn-link', onclick: () => { newKey = null; draw(); } }, 'Done'),
        )
      : null;
    return section(
      'API keys',
      'Programs send one as “Authorization: Bearer …” to read tokens from the local API.',
      list,
      shown,
      keyError ? h('div', { class: 'note note-error', role: 'alert' }, keyError.message) : null,
      createForm,
    );
  }

  function prefsSection() {
    const secs = h('input', {
      id: 'setting-clear-clipboard', testid: 'setting-clear-clipboard', type: 'number', min: '0', max: '3600', step: '1', inputmode: 'numeric',
      value: String(settings.clear_clipboard_secs ?? 60),
      onchange: () => {
        const n = Number(secs.value);
        if (!Number.isInteger(n) || n < 0) {
          error = { message: 'Enter a whole number of seconds, 0 or more (0 = never clear).' };
          return draw();
        }
        save({ clear_clipboard_secs: n });
      },
    });
    const toggle = (id, testid, key, title, help) =>
      h(
        'label',
        { class: 'toggle-row', for: id },
        h('input', { id, testid, type: 'checkbox', checked: Boolean(settings[key]), onchange: (e) => save({ [key]: e.target.checked }) }),
        h('span', { class: 'toggle-text' }, h('span', { class: 'toggle-title' }, title), h('span', { class: 'field-help' }, help)),
      );
    return section(
      'Behaviour',
      null,
      toggle('setting-autostart', 'setting-autostart', 'start_at_login', 'Start at login', 'Keep tokens fresh from the moment you sign in.'),
      toggle('setting-notifications', 'setting-notifications', 'notifications', 'Notifications', 'Tell me when a refresh fails and when it recovers.'),
      h(
        'div',
        { class: 'field field-inline' },
        h('label', { for: 'setting-clear-clipboard', class: 'toggle-title' }, 'Clear the clipboard after copying'),
        h('span', { class: 'with-unit' }, secs, h('span', { class: 'unit' }, 'seconds')),
        h('p', { class: 'field-help' }, '0 = never. A copied token stays on the clipboard this long.'),
      ),
    );
  }

  function homeSection() {
    const home = settings.home || {};
    return section(
      'Where Tokenwarden lives',
      null,
      h('p', { testid: 'home-mode', class: 'toggle-title' }, home.tray ? 'In the tray' : 'In this window'),
      h('p', { testid: 'home-why', class: 'field-help' }, home.why || ''),
      home.tray
        ? null
        : h(
            'div',
            { class: 'home-actions' },
            h('button', { type: 'button', class: 'btn', testid: 'quit', onclick: quit }, 'Quit Tokenwarden'),
            h('span', { class: 'field-help' }, 'Programs stop getting fresh tokens until it is started again.'),
          ),
    );
  }

  async function quit() {
    const sure = await confirmDialog({
      title: 'Quit Tokenwarden?',
      body: 'Tokens stop being refreshed, and programs asking the API get no answer, until you start it again.',
      confirm: 'Quit',
    });
    if (sure) await api.quit().catch((err) => toast(err.message, 'error'));
  }

  function draw() {
    keepFocus(body, () => {
      if (!settings) {
        return replace(body, error ? h('div', { class: 'note note-error', role: 'alert' }, error.message) : h('p', { class: 'muted loading' }, 'Loading…'));
      }
      const status = saving ? 'Saving…' : savedAt && Date.now() - savedAt < 3000 ? 'Saved' : '';
      replace(
        body,
        error ? h('div', { class: 'note note-error', role: 'alert' }, error.message) : null,
        apiSection(),
        keysSection(),
        askSection(),
        prefsSection(),
        homeSection(),
        h('p', { class: 'save-status muted small', 'aria-live': 'polite' }, status),
      );
    });
  }

  return {
    el,
    show: () => { newKey = null; keyError = null; draw(); load(); },
    hide: () => { newKey = null; },
    configChanged: () => settings && loadApprovals(),
    approvalsChanged: () => settings && loadApprovals(),
  };
}

async function copyKey(key) {
  try {
    await navigator.clipboard.writeText(key);
    toast('Copied the API key', 'ok');
  } catch {
    toast('Could not copy to the clipboard; select the key and copy it.', 'error');
  }
}
