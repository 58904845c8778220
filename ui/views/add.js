// ui/views/add.js: the Add account view: preset grid → the preset's form → connect.
// Owns: the form (built once per chosen preset, so a redraw never loses what was typed),
// its checks in the page (name pattern, duplicates, required fields), `add_account`, and
// handing over to connect.js for presets that need consent. The client secret is read from
// its input at submit and sent to the command, which puts it in the keychain.

import * as api from '../api.js';
import { h, icon, replace } from '../dom.js';
import { connecting, connectPanel, startConnect } from '../connect.js';
import { CONNECTS_WITH, remedyText } from '../words.js';
import { toast } from '../toast.js';

const NAME_RE = /^[a-z0-9_-]+$/;

/** Field id → label, help, placeholder, and whether it must be filled in. */
const FIELDS = {
  client_id: { label: 'Client id', help: 'From the app you registered in the provider’s developer console.', required: true },
  issuer: { label: 'Issuer URL', placeholder: 'https://accounts.example.com', help: 'Endpoints are read from its /.well-known/openid-configuration.', required: true, type: 'url' },
  url: { label: 'Token URL', placeholder: 'https://api.example.com/token', help: 'The endpoint that answers with a token.', required: true, type: 'url' },
  base_url: { label: 'Base URL', placeholder: 'Leave empty for the provider’s default', help: null, required: false, type: 'url' },
  depends_on: { label: 'Depends on', placeholder: 'account name', help: 'The account whose token this one is fetched with.', required: true },
  redirect_uri: { label: 'Redirect URL', placeholder: 'Leave empty unless the provider matches it exactly', help: null, required: false, type: 'url' },
  auth_url: { label: 'Authorization URL', placeholder: 'https://auth.example.com/authorize', help: 'Where the browser goes to ask for consent.', required: true, type: 'url' },
  token_url: { label: 'Token URL', placeholder: 'https://auth.example.com/token', help: 'Where codes and refresh tokens are traded for access tokens.', required: true, type: 'url' },
};

/** A preset whose field means something else there: an MCP account's `url` is its server. */
const PRESET_FIELDS = {
  mcp: {
    url: { label: 'MCP server URL', placeholder: 'https://mcp.example.com/mcp', help: 'Its authorization server is found from it, and Tokenwarden registers itself there.', required: true, type: 'url' },
  },
};

/** The field `id` as preset `presetId` asks for it. */
function fieldOf(presetId, id) {
  return (PRESET_FIELDS[presetId] || {})[id] || FIELDS[id];
}

const ORDER = ['client_id', 'issuer', 'auth_url', 'token_url', 'url', 'depends_on', 'base_url', 'redirect_uri'];

export function sortPresets(presets) {
  return [...presets].sort((a, b) => (a.id === 'fitbit' ? -1 : b.id === 'fitbit' ? 1 : 0));
}

export function submitLabel(p) {
  return p.connects_with === 'none' ? 'Add' : `Connect ${p.label}`;
}

export function createAddView(app) {
  const el = h('section', { class: 'view-add', 'aria-labelledby': 'add-title' });
  const subtitle = h('p', { class: 'subtitle' });
  const body = h('div', { class: 'add-body' });
  el.append(h('header', { class: 'view-header' }, h('div', {}, h('h1', { id: 'add-title' }, 'Add account'), subtitle)), body);

  let preset = null; // the chosen preset
  let form = null; // its <form>, kept while the preset stays chosen
  let refs = {}; // field id → input
  let addedName = null; // added already: a retry only connects again
  let panelSlot = null;

  function show() {
    if (!preset) drawGrid();
    update();
  }

  function drawGrid() {
    preset = null;
    form = null;
    refs = {};
    addedName = null;
    subtitle.textContent = 'Pick the provider that issues the token.';
    if (app.state.presetsError) {
      replace(body, h('div', { class: 'note note-error', role: 'alert' }, app.state.presetsError.message));
      return;
    }
    if (!app.state.presets) {
      replace(body, h('p', { class: 'muted loading' }, 'Loading providers…'));
      return;
    }
    const cards = sortPresets(app.state.presets).map((p) =>
      h(
        'button',
        { type: 'button', class: 'preset', testid: 'preset', 'data-preset': p.id, onclick: () => choose(p) },
        h('span', { class: 'preset-label' }, p.label),
        p.description ? h('span', { class: 'preset-desc' }, p.description) : null,
        h('span', { class: `preset-tag tag-${p.connects_with}` }, CONNECTS_WITH[p.connects_with] || p.connects_with),
      ),
    );
    replace(body, h('div', { class: 'preset-grid' }, cards));
  }

  function choose(p) {
    preset = p;
    addedName = null;
    buildForm(p);
    update();
    const first = refs.client_id || refs.name;
    if (first) first.focus();
  }

  function fieldBox(id, labelText, input, help, extra) {
    const helpId = `help-${id}`;
    if (help) input.setAttribute('aria-describedby', helpId);
    return h(
      'div',
      { class: 'field' },
      h('label', { for: `f-${id}`, class: 'field-label' }, labelText),
      input,
      help ? h('p', { class: 'field-help', id: helpId }, help) : null,
      extra,
    );
  }

  function buildForm(p) {
    subtitle.textContent = p.description || `Add a ${p.label} account.`;
    refs = {};
    const fields = new Set(p.fields || []);
    const nameMsg = h('p', { class: 'field-msg', id: 'msg-name', 'aria-live': 'polite' });
    refs.name = h('input', {
      id: 'f-name', name: 'name', testid: 'field-name', type: 'text', value: p.id, autocomplete: 'off', spellcheck: 'false',
      required: true, 'aria-describedby': 'help-name msg-name',
      oninput: () => {
        const problem = nameProblem(refs.name.value.trim());
        nameMsg.textContent = problem || '';
        refs.name.toggleAttribute('aria-invalid', Boolean(problem));
      },
    });
    refs.nameMsg = nameMsg;
    const rows = [
      fieldBox('name', 'Account name', refs.name, 'Lowercase letters, digits, - and _. Programs ask for the token by this name.', nameMsg),
    ];
    for (const id of ORDER) {
      if (!fields.has(id)) continue;
      const f = fieldOf(p.id, id);
      const input = h('input', {
        id: `f-${id}`, name: id, testid: `field-${id}`, type: f.type || 'text', autocomplete: 'off', spellcheck: 'false',
        placeholder: f.placeholder || null, required: f.required || null,
        list: id === 'depends_on' ? 'dl-accounts' : null,
      });
      refs[id] = input;
      const extra = id === 'depends_on'
        ? h('datalist', { id: 'dl-accounts' }, (app.state.accounts || []).map((a) => h('option', { value: a.name })))
        : null;
      rows.push(fieldBox(id, f.label + (f.required ? '' : ' (optional)'), input, f.help, extra));
    }
    if (p.needs_secret) {
      refs.secret = h('input', {
        id: 'f-secret', name: 'secret', testid: 'field-secret', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
      });
      rows.push(fieldBox('secret', 'Client secret', refs.secret, 'Goes straight into the system keychain, never into the config file.'));
    }
    if (fields.has('scopes')) rows.push(scopesBox(p));

    const hint = p.redirect_hint || p.setup
      ? h(
          'div',
          { class: 'hint-box' },
          h('div', { class: 'hint-icon' }, icon(['M12 8h.01', 'M11 12h1v5h1', 'M12 3a9 9 0 1 0 0 18a9 9 0 0 0 0-18z'])),
          h(
            'div',
            { class: 'hint-text' },
            p.redirect_hint ? h('p', {}, `Register this redirect URL with ${p.label} when you create the client:`) : null,
            p.redirect_hint
              ? h(
                  'p',
                  { class: 'hint-url' },
                  h('code', { testid: 'redirect-hint' }, p.redirect_hint),
                  h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(p.redirect_hint, 'Copied the redirect URL') }, 'Copy'),
                )
              : null,
            p.setup ? h('p', { class: 'hint-setup' }, p.setup) : null,
          ),
        )
      : null;

    form = h(
      'form',
      { class: 'add-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); submit(); } },
      h(
        'div',
        { class: 'form-top' },
        h('button', { type: 'button', class: 'btn btn-link', testid: 'back-to-presets', onclick: () => { drawGrid(); update(); } }, '← All providers'),
        h('span', { class: `preset-tag tag-${p.connects_with}` }, CONNECTS_WITH[p.connects_with] || p.connects_with),
      ),
      h('h2', { class: 'form-title' }, p.label),
      hint,
      h('div', { class: 'fields' }, rows),
      h('div', { class: 'form-msgs' }),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary btn-large', testid: 'add-submit' }, submitLabel(p))),
    );
    panelSlot = h('div', { class: 'panel-slot' });
    replace(body, form, panelSlot);
    refs.name.dispatchEvent(new Event('input')); // "fitbit" may be taken already
  }

  function scopesBox(p) {
    const suggestions = p.scope_suggestions || [];
    const defaults = new Set(p.default_scopes || []);
    const boxes = suggestions.map((s) =>
      h('label', { class: 'check' }, h('input', { type: 'checkbox', testid: 'scope', value: s, checked: defaults.has(s) }), h('span', { class: 'mono' }, s)),
    );
    // Defaults the preset has but does not suggest go in the free-text box.
    const extra = [...defaults].filter((s) => !suggestions.includes(s)).join(' ');
    refs.scopes = h('input', {
      id: 'f-scopes', name: 'scopes', testid: 'field-scopes', type: 'text', autocomplete: 'off', spellcheck: 'false', value: extra,
      placeholder: suggestions.length ? 'More scopes, separated by spaces' : 'Scopes, separated by spaces', 'aria-describedby': 'help-scopes',
    });
    return h(
      'fieldset',
      { class: 'field scopes' },
      h('legend', { class: 'field-label' }, 'Scopes'),
      boxes.length ? h('div', { class: 'checks' }, boxes) : null,
      refs.scopes,
      h('p', { class: 'field-help', id: 'help-scopes' }, 'What the token may do. Ask only for what your programs need.'),
    );
  }

  function nameProblem(name) {
    if (!name) return 'Give the account a name.';
    if (!NAME_RE.test(name)) return 'Use only lowercase letters a–z, digits, - and _ in the account name (for example fitbit-home).';
    if (name !== addedName && (app.state.accounts || []).some((a) => a.name === name)) {
      return `An account named ${name} already exists. Pick another name.`;
    }
    return null;
  }

  function check() {
    const name = refs.name.value.trim();
    const problem = nameProblem(name);
    if (problem) return { field: refs.name, message: problem };
    for (const id of ORDER) {
      const input = refs[id];
      const f = fieldOf(preset.id, id);
      if (input && f.required && !input.value.trim()) {
        return { field: input, message: `Enter the ${f.label.toLowerCase()}.` };
      }
    }
    if (refs.secret && !refs.secret.value && addedName !== name) return { field: refs.secret, message: 'Paste the client secret.' };
    return null;
  }

  function formData() {
    const out = { name: refs.name.value.trim(), provider: preset.id };
    for (const id of ORDER) {
      if (refs[id] && refs[id].value.trim()) out[id] = refs[id].value.trim();
    }
    if (refs.scopes) {
      const picked = [...form.querySelectorAll('[data-testid=scope]:checked')].map((c) => c.value);
      const typed = refs.scopes.value.split(/[\s,]+/).filter(Boolean);
      const scopes = [...new Set([...picked, ...typed])];
      if (scopes.length) out.scopes = scopes;
    }
    if (refs.secret && refs.secret.value) out.secret = refs.secret.value;
    return out;
  }

  function setMessage(kind, message, remedy) {
    const slot = form && form.querySelector('.form-msgs');
    if (!slot) return;
    if (!message) return replace(slot);
    const hint = remedy ? remedyText(remedy, refs.name.value.trim(), Date.now()) : null;
    replace(
      slot,
      kind === 'error'
        ? h('div', { class: 'note note-error', testid: 'form-error', role: 'alert' }, message, hint ? h('p', { class: 'hint' }, hint) : null)
        : h('div', { class: 'note note-info', role: 'status' }, message),
    );
  }

  function setBusy(on) {
    const btn = form.querySelector('[data-testid=add-submit]');
    btn.disabled = on;
    btn.textContent = on ? 'Adding…' : submitLabel(preset);
  }

  async function submit() {
    if (!form || form.querySelector('[data-testid=add-submit]').disabled) return;
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    const problem = check();
    if (problem) {
      problem.field.setAttribute('aria-invalid', 'true');
      if (problem.field === refs.name) refs.nameMsg.textContent = ''; // said once, below
      setMessage('error', problem.message);
      problem.field.focus();
      return;
    }
    setMessage(null);
    const data = formData();
    const p = preset;
    setBusy(true);
    try {
      if (addedName !== data.name) {
        const view = await api.addAccount(data);
        addedName = data.name;
        refs.name.readOnly = true;
        if (refs.secret) refs.secret.value = ''; // in the keychain now
        if (view && view.name) app.setAccount(view);
        else app.reloadAccounts();
      }
    } catch (err) {
      setBusy(false);
      setMessage('error', err.message, err.remedy);
      return;
    }
    setBusy(false);
    if (p.connects_with === 'browser' || p.connects_with === 'device') {
      startConnect(data.name, p.connects_with === 'device', 'add');
    } else {
      toast(`Added ${data.name}`, 'ok');
      drawGrid();
      app.navigate('accounts');
    }
  }

  /** Called by the app when the connect flow changes or ends. */
  function connectChanged(ended) {
    if (ended && ended.origin === 'add') {
      if (ended.stage === 'completed') {
        drawGrid();
      } else if (form) {
        if (ended.stage === 'failed') {
          setMessage('error', `${ended.message || 'Connecting failed.'} The account ${ended.account} is saved; press ${submitLabel(preset)} to try again.`);
        } else {
          setMessage('info', `Cancelled. The account ${ended.account} is saved; connect it here or from Accounts when you are ready.`);
        }
      }
    }
    update();
  }

  function update() {
    const c = connecting();
    const waiting = Boolean(c && c.origin === 'add' && form);
    if (form) form.hidden = waiting;
    if (panelSlot) replace(panelSlot, waiting ? connectPanel(c, preset ? preset.label : null) : null);
    if (!waiting && form && document.activeElement === document.body) {
      const btn = form.querySelector('[data-testid=add-submit]');
      if (btn) btn.focus({ preventScroll: true });
    }
  }

  function presetsLoaded() {
    if (!preset) drawGrid();
  }

  return { el, show, update, connectChanged, presetsLoaded, reset: drawGrid };
}

async function copyText(text, message) {
  try {
    await navigator.clipboard.writeText(text);
    toast(message, 'ok');
  } catch {
    toast('Could not copy to the clipboard.', 'error');
  }
}
