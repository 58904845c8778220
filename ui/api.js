// ui/api.js: the only module that knows Tauri exists (tauri.conf.json: withGlobalTauri: true).
// Owns: one function per backend command, the two event subscriptions, and the error shape.
// Every command rejects with {code, message, remedy}; a string or odd value from the shell is
// wrapped, so the views never have to guess what they caught.

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

function asUiError(err) {
  if (err && typeof err === 'object' && typeof err.message === 'string') {
    return { code: err.code || 'error', message: err.message, remedy: err.remedy || null };
  }
  return { code: 'error', message: String(err ?? 'Unknown error'), remedy: null };
}

const call = (command, args = {}) =>
  invoke(command, args).catch((err) => {
    throw asUiError(err);
  });

/** Every account's view; with `names`, only those (names that are no account are left out). */
export const accounts = (names) => call('accounts', names ? { names } : {});
export const history = (account, limit) => call('history', { account, limit });
export const takers = () => call('takers');
/** What `tokenwarden doctor` finds about one account (no token in it). */
export const diagnose = (name) => call('diagnose', { name });
export const refreshNow = (name) => call('refresh_now', { name });
/** The token goes to the clipboard in Rust; the answer only says when it is cleared. */
export const copyToken = (name) => call('copy_token', { name });
export const beginConnect = (name, device) => call('begin_connect', { name, device });
export const cancelConnect = (name) => call('cancel_connect', { name });
export const removeAccount = (name) => call('remove_account', { name });
export const presets = () => call('presets');
export const addAccount = (form) => call('add_account', { form });
/** The secret goes straight to the keychain; the answer is the account's new view. */
export const setClientSecret = (name, secret) => call('set_client_secret', { name, secret });
export const configStatus = () => call('config_status');
export const reloadConfig = () => call('reload_config');
export const settings = () => call('settings');
export const saveSettings = (settings) => call('save_settings', { settings });
export const apiKeys = () => call('api_keys');
export const quit = () => call('quit');
/** The first list is drawn, `pageMs` after the page began: the app logs how long it took. */
export const windowDrawn = (pageMs) => call('window_drawn', { page_ms: pageMs });
export const createApiKey = (label) => call('create_api_key', { label });
export const revokeApiKey = (label) => call('revoke_api_key', { label });
/** Ask first: the requests held for the user, the answer, and the programs allowed always. */
export const asks = () => call('asks');
export const answerAsk = (id, answer) => call('answer_ask', { id, answer });
export const approvals = () => call('approvals');
export const revokeApproval = (exe, account) => call('revoke_approval', { exe, account });
export const setAskFirst = (on) => call('set_ask_first', { on });

/** Engine events are hints to re-read state, never the truth (STYLE habit 11). */
export const onEngineEvent = (fn) => listen('engine-event', (e) => fn(e.payload || {}));
/** The tray asks the window to show one account (payload: its name). */
export const onFocusAccount = (fn) => listen('focus-account', (e) => fn(e.payload));
