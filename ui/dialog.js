// ui/dialog.js: the small dialogs: confirm (Remove account, Revoke key) and secret entry
// (Set client secret). Owns: the one <dialog id="dialog">. Native modal: focus is trapped, Escape cancels, and a
// click on the backdrop cancels too. The safe choice (Cancel) comes first and gets focus.

import { h, replace } from './dom.js';

/** Resolves true when the user confirms. */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  const dlg = document.getElementById('dialog');
  return new Promise((resolve) => {
    const form = h(
      'form',
      { method: 'dialog', class: 'dialog-form' },
      h('h2', { class: 'dialog-title', id: 'dialog-title' }, title),
      body ? h('p', { class: 'dialog-body' }, body) : null,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'submit', class: 'btn', value: 'cancel', autofocus: true }, 'Cancel'),
        h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary', value: 'confirm', testid: 'confirm' }, confirm),
      ),
    );
    replace(dlg, form);
    dlg.setAttribute('aria-labelledby', 'dialog-title');
    dlg.returnValue = '';
    const onClick = (e) => {
      if (e.target === dlg) dlg.close('cancel');
    };
    dlg.addEventListener('click', onClick);
    dlg.addEventListener(
      'close',
      () => {
        dlg.removeEventListener('click', onClick);
        resolve(dlg.returnValue === 'confirm');
      },
      { once: true },
    );
    dlg.showModal();
  });
}

/**
 * Asks for a secret in a password field. Resolves to the text, or null when cancelled.
 * The field is emptied and removed as soon as the dialog closes: the secret leaves the page
 * for the keychain and stays nowhere in the DOM.
 */
export function secretDialog({ title, body, label, confirm = 'Save' }) {
  const dlg = document.getElementById('dialog');
  return new Promise((resolve) => {
    const input = h('input', {
      id: 'dialog-secret', type: 'password', testid: 'secret-input', autocomplete: 'off', spellcheck: 'false', required: true, autofocus: true,
      // Enter in the field saves: implicit submission would press the first button, Cancel.
      onkeydown: (e) => {
        if (e.key !== 'Enter') return;
        e.preventDefault();
        if (input.value.trim()) dlg.close('confirm');
      },
    });
    const form = h(
      'form',
      { method: 'dialog', class: 'dialog-form' },
      h('h2', { class: 'dialog-title', id: 'dialog-title' }, title),
      body ? h('p', { class: 'dialog-body' }, body) : null,
      h('label', { class: 'field-label', for: 'dialog-secret' }, label),
      input,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'submit', class: 'btn', value: 'cancel', formnovalidate: true }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-primary', value: 'confirm', testid: 'confirm' }, confirm),
      ),
    );
    replace(dlg, form);
    dlg.setAttribute('aria-labelledby', 'dialog-title');
    dlg.returnValue = '';
    const onClick = (e) => {
      if (e.target === dlg) dlg.close('cancel');
    };
    dlg.addEventListener('click', onClick);
    dlg.addEventListener(
      'close',
      () => {
        dlg.removeEventListener('click', onClick);
        const value = dlg.returnValue === 'confirm' ? input.value : '';
        input.value = '';
        replace(dlg);
        resolve(value.trim() ? value : null);
      },
      { once: true },
    );
    dlg.showModal();
  });
}
