// ui/words.js: what each engine value means, in the user's words.
// Owns: status labels and the one sentence per status, remedy wording, log triggers and
// outcomes. Views decide where these go; this module decides what they say. How bad a
// status is and whether its token may be copied are the engine's (`severity`, `can_copy`).

import { clock } from './format.js';

export const STATUS = {
  not_connected: { label: 'Not connected' },
  fresh: { label: 'Fresh' },
  refreshing: { label: 'Refreshing' },
  retrying: { label: 'Retrying' },
  needs_reconnect: { label: 'Needs reconnect' },
  expired: { label: 'Expired' },
};

export const statusLabel = (status) => (STATUS[status] ? STATUS[status].label : status);

/**
 * The engine ranks every status (`severity`: idle < fine < busy < attention < bad); these
 * two want the user's attention (nav badge, summary).
 */
export const ATTENTION = new Set(['attention', 'bad']);

/** One plain sentence: what the status means and what to do about it. */
export function statusSentence(a, now) {
  switch (a.status) {
    case 'fresh':
      return 'Token is valid and will be refreshed before it expires.';
    case 'refreshing':
      return 'Getting a new token…';
    case 'retrying':
      return a.next_refresh
        ? `The provider could not be reached; trying again at ${clock(a.next_refresh, now)}.`
        : 'The provider could not be reached; trying again shortly.';
    case 'needs_reconnect':
      if (a.connects_with === 'none') {
        return a.remedy && a.remedy.kind === 'set_secret'
          ? 'The provider refused the credentials. Press Client secret… and paste the right one; it is tried again at once.'
          : 'The provider refused the credentials. Check the account settings, then press Refresh now.';
      }
      return 'The provider refused the grant. Reconnect to continue.';
    case 'not_connected':
      if (a.connects_with === 'browser') return 'Not connected yet. Press Connect and approve access in your browser.';
      if (a.connects_with === 'device') return 'Not connected yet. Press Connect and enter the code it shows on the provider’s page.';
      if (a.remedy && a.remedy.kind === 'set_secret') {
        return 'Not connected yet. Press Client secret… and paste the one from the provider; the first token is fetched at once.';
      }
      return 'Not connected yet. Press Refresh now to fetch the first token.';
    case 'expired':
      return 'The token expired and has not been refreshed yet.';
    default:
      return '';
  }
}

/**
 * A remedy in words, for hints beside an error. `reconnect` and `fix_config` also get a
 * button from the view; the text still says what the button does.
 */
export function remedyText(remedy, account, now) {
  if (!remedy) return null;
  const name = account || 'NAME';
  switch (remedy.kind) {
    case 'reconnect':
      return 'Reconnect the account to continue.';
    case 'set_secret':
      return `Store the right client secret (Client secret…, or tokenwarden secret set ${name}).`;
    case 'fix_config':
      return remedy.line ? `Fix line ${remedy.line} of the config file, then press Reload.` : 'Fix the config file, then press Reload.';
    case 'wait_until':
      return remedy.until ? `Nothing to do: it is tried again at ${clock(remedy.until, now)}.` : 'Nothing to do: it is tried again later.';
    case 'unlock_keychain':
      return 'Unlock your keychain (the login keyring), then try again.';
    case 'check_store':
      return remedy.store ? `Check the ${remedy.store}: it must be reachable and opened with the right key; it is tried again.` : 'Check the store the secrets live in; it is tried again.';
    case 'stop_other_engine':
      return remedy.pid
        ? `Another Tokenwarden (process ${remedy.pid}) already refreshes on this machine; quit it and try again.`
        : 'Another Tokenwarden already refreshes on this machine; quit it and try again.';
    default:
      return null;
  }
}

export const CONNECTS_WITH = {
  browser: 'Browser sign-in',
  device: 'Device code',
  none: 'No sign-in',
};

export const TRIGGER = {
  scheduled: 'Scheduled',
  manual: 'Manual',
  min_valid: 'Client asked',
  retry: 'Retry',
  dependency: 'Dependency',
  connect: 'Connect',
  startup: 'Startup',
  rejected: 'Reported 401',
  save: 'Saved to keychain',
};

export const OUTCOME = {
  ok: 'OK',
  transient_error: 'Temporary error',
  permanent_error: 'Refused',
};
