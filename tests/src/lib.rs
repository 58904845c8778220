//! End-to-end test support for Tokenwarden: the real binary, the real OS keychain, fake providers.
//!
//! * [`fakes::oauth`]  a Fitbit-legacy-like / Google-like OAuth 2.0 server
//! * [`fakes::wechat`] a WeChat-like `cgi-bin/token` + `jsapi_ticket` server
//! * [`harness`]       one isolated environment per test (config, data dir, keychain service),
//!   helpers that run the binary and read what it left behind, and
//!   [`harness::LegacyAccount`], the connected legacy-Fitbit account most tests start from
//! * [`api`]           a byte-exact client of the local HTTP API and a Server-Sent Events reader
//! * [`proc`]          processes by id: `/proc/PID/stat` and `status` (alive, CPU, memory,
//!   children) and signals
//! * [`prometheus`]    a strict parser of the Prometheus text exposition format
//! * [`ask`]         a program that takes a token when told (tests/ask/taker.py)
//! * [`mcp`]         an MCP SDK server with its own OAuth (tests/mcp/server.py)
//! * [`python`]      the real Python clients (MCP SDK, google-auth) in `target/py`
//! * [`redis`]         a real `redis-server` on a free loopback port, for the shared store
//! * [`fleet`]         fleets of `serve` hosts sharing one of those
//! * [`wayland`]       sway on its headless backend, for the window and clipboard on Wayland
//! * [`wine`]          the Windows build under wine, its keychain wine's Credential Manager
//! * [`desktop`]       the tray app in a private desktop session: tray over D-Bus, notifications,
//!   clipboard, X11 window state, and the real window through tauri-driver (WebDriver)
//!
//! The fakes are in-process axum servers on 127.0.0.1:0 running on the test's own tokio runtime;
//! a test reads their counters and injects faults through the handle it holds, so no HTTP control
//! plane exists. Tests run inside `tests/scripts/session.sh`, which provides the keychain.

pub mod api;
pub mod ask;
pub mod desktop;
pub mod fakes;
pub mod fleet;
pub mod harness;
pub mod keyring;
pub mod local;
pub mod mcp;
pub mod proc;
pub mod prometheus;
pub mod python;
pub mod redis;
pub mod wayland;
pub mod wine;

pub use api::{Answer, Api, Request};
pub use harness::{wait_until, Env, Output, Serve};
