// ui/banner.js: the config-error banner shown above every view.
// Owns: its wording ("The config file has an error at line N: …") and the Reload button.
// Nothing else changes while the config is broken: the engine keeps the last good one.

import { h, replace } from './dom.js';

const trimDot = (s) => String(s || '').replace(/[.\s]+$/, '');

export function drawBanner(slot, config, onReload, reloading) {
  const err = config && config.error;
  if (!err) return replace(slot);
  const where = err.line ? ` at line ${err.line}` : '';
  replace(
    slot,
    h(
      'div',
      { class: 'banner', testid: 'config-error', role: 'alert' },
      h('span', { class: 'banner-dot', 'aria-hidden': 'true' }),
      h('p', { class: 'banner-text' }, `The config file has an error${where}: ${trimDot(err.message)}. Fix it and press Reload.`),
      h('button', { type: 'button', class: 'btn btn-small', testid: 'config-reload', disabled: reloading, onclick: onReload }, reloading ? 'Reloading…' : 'Reload'),
    ),
  );
}
