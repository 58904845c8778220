//! Tokenwarden keeps API access tokens fresh.
//! * `engine`  the headless core: config, providers, keychain, scheduler, history, events
//! * `cli`     clap commands over the engine
//! * `desktop` the tray app (feature `desktop`; a later step)

pub mod cli;
pub mod engine;
pub mod logging;
