//! One isolated Tokenwarden environment per test, and helpers that drive the real binary.
//!
//! An [`Env`] owns a temp dir (config file + data dir) and a keychain service name nobody else
//! uses, so tests can run in parallel and leftovers never collide; dropping it clears that
//! service's keychain items. The binary is `TOKENWARDEN_BIN`, else `target/debug/tokenwarden`.
//! * [`Env::run`]         one command to completion → [`Output`]
//! * [`Env::spawn_serve`] `serve` in the background → [`Serve`], SIGTERM on drop ([`Env::spawn_serve_with`]:
//!   with extra variables)
//! * [`Env::spawn_app`]   the tray app (no arguments) in the background, also a [`Serve`]
//! * [`Env::vars`]        the variables that isolate it, for launchers such as tauri-driver
//! * [`Env::connect`]     `connect --no-browser` with the test playing the browser
//! * [`Env::keychain_get`] reads the OS keychain with `secret-tool`, independently of the binary
//! * [`Env::history_rows`] the `refreshes` table of `<data dir>/history.sqlite3`, read-only
//! * [`Env::create_api_key`] `api-key create LABEL` → the key ([`Env::create_write_key`]: with
//!   `--write`); [`Env::api`] an API client with it
//! * [`Env::serve_api`]   `serve` answering its API, and a client; [`Env::serve_with_new_key`]
//!   creates the key first ([`Env::serve_with_new_write_key`]: a write key)
//! * [`Env::start_connect_device`] `connect NAME --device`, reading its two stdout lines
//! * [`Env::fail_keychain_writes`] makes every keychain write of the binary fail (debug builds)
//! * [`Env::sibling`]     another data dir and config on the same keychain service
//!
//! [`LegacyAccount`] builds the setup most tests start from: account `fb` on a legacy-Fitbit
//! fake, its client secret stored and, with [`LegacyAccount::connected`], tokens seeded.
//!
//! Everything is used as `harness::NAME`; the files below only sort it by concern:
//! * `env`: [`Env`] itself, its variables and commands run to completion
//! * `keychain`, `cli`, `files`: what it stored in the keychain, printed, left on disk
//! * `serve`: [`Serve`], the binary in the background
//! * `browser`: the consent flow ([`Connecting`], [`authorize_in_browser`], [`browser_get`])
//! * `legacy_account`: [`LegacyAccount`]
//! * `output`, `ports`, `clock`: [`Output`], [`free_port`], time and waiting

mod browser;
mod cli;
mod clock;
mod env;
mod files;
mod keychain;
mod legacy_account;
mod output;
mod ports;
mod serve;

pub use browser::{authorize_in_browser, browser_get, Connecting, DeviceConnecting};
pub use clock::{percentile, unix_from_rfc3339, unix_now, wait_until};
pub use env::{bin_path, Env};
pub use files::files_containing;
pub use legacy_account::LegacyAccount;
pub use output::Output;
pub use ports::free_port;
pub use serve::Serve;
