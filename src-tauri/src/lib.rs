//! Tokenwarden keeps API access tokens fresh.
//! * `engine`  the headless core: config, providers, keychain, scheduler, history, events
//! * `api`     the local HTTP API (axum) over the engine
//! * `cli`     clap commands over the engine, or over a running engine's API
//! * `host`    starts and stops engine + API + lock for `serve` and the tray app alike
//! * `desktop` the tray app (feature `desktop`, on by default)

pub mod api;
pub mod cli;
#[cfg(feature = "desktop")]
pub mod desktop;
pub mod engine;
pub mod host;
pub mod logging;
