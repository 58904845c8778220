// ui/dialog.js: the small confirm dialog (Remove account, Revoke key).
// Owns: the one <dialog id="dialog">. Native modal: focus is trapped, Escape cancels, and a
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
