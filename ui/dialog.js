// ui/dialog.js: the small dialogs: confirm (Remove account, Revoke key) and secret entry
// (Set client secret). Owns: the one <dialog id="dialog">. Native modal: focus is trapped,
// Escape cancels, and a click on the backdrop cancels too. The safe choice (Cancel) comes
// first and gets focus in a confirmation.

import { h, replace } from './dom.js';

/**
 * Shows `content` (title, body, fields) above Cancel and the `confirm` button, modally.
 * `onClose(confirmed)` runs once when it closes, however it closes.
 */
function showDialog(dlg, { title, body, content = null, confirm, confirmClass, cancelFirst }, onClose) {
  const form = h(
    'form',
    { method: 'dialog', class: 'dialog-form' },
    h('h2', { class: 'dialog-title', id: 'dialog-title' }, title),
    body ? h('p', { class: 'dialog-body' }, body) : null,
    content,
    h(
      'div',
      { class: 'dialog-actions' },
      h('button', { type: 'submit', class: 'btn', value: 'cancel', autofocus: cancelFirst, formnovalidate: true }, 'Cancel'),
      h('button', { type: 'submit', class: confirmClass, value: 'confirm', testid: 'confirm' }, confirm),
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
      onClose(dlg.returnValue === 'confirm');
    },
    { once: true },
  );
  dlg.showModal();
}

/** Resolves true when the user confirms. */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  const dlg = document.getElementById('dialog');
  return new Promise((resolve) => {
    const confirmClass = danger ? 'btn btn-danger' : 'btn btn-primary';
    showDialog(dlg, { title, body, confirm, confirmClass, cancelFirst: true }, resolve);
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
    const content = [h('label', { class: 'field-label', for: 'dialog-secret' }, label), input];
    showDialog(dlg, { title, body, content, confirm, confirmClass: 'btn btn-primary', cancelFirst: false }, (confirmed) => {
      const value = confirmed ? input.value : '';
      input.value = '';
      replace(dlg);
      resolve(value.trim() ? value : null);
    });
  });
}
