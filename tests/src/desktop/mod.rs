//! The tray app (`tokenwarden` with no arguments) under test in a private desktop session.
//!
//! * [`Session`]  one tray app per D-Bus session at a time: it holds the desktop lock (the app
//!   is single-instance per session bus, and the names below have one owner each), a
//!   StatusNotifierWatcher stand-in (`scripts/sni-watcher.py`) and a dbusmock notification
//!   daemon, and launches the app with `BROWSER` = `scripts/fake-browser.sh`
//! * [`TrayItem`] the app's StatusNotifierItem: properties, dbusmenu layout, clicks
//!   (`scripts/dbus-tool.py`, which prints JSON)
//! * [`Driver`]   tauri-driver + WebKitWebDriver + a fantoccini session on the real window
//! * [`clipboard`], [`window_mapped`]/[`close_window`] (`scripts/x11-window.py`),
//!   [`save_screenshot`]: what the X display shows
//! * [`write_settings`], [`engine_pid`], [`countdown_seconds`]
//!
//! Everything here observes the app from outside, the way a user or another program would:
//! D-Bus, the X clipboard, X11 window state, the DOM, the lock file. The helper processes are
//! started by the session and ended by their own handles when it drops.
//!
//! Everything is used as `desktop::NAME`; the files below only sort it: `session`, `tray`,
//! `driver` (with `keyboard`, the Driver's key presses and focus moves) and `x11`.

mod driver;
mod keyboard;
mod session;
mod tray;
mod x11;

pub use driver::Driver;
pub use session::{Notification, Session};
pub use tray::{dbusmenu_text, entry, MenuEntry, TrayItem};
pub use x11::{
    clipboard, clipboard_as, close_window, png_size, save_screenshot, screenshot_dir, window_mapped,
};

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::Env;
use crate::proc;

/// The window title the contract gives the `main` window.
pub const WINDOW_TITLE: &str = "Tokenwarden";

/// The Python with python3-gi and python3-dbusmock: Debian's, not a pyenv shim on PATH.
pub fn python() -> OsString {
    std::env::var_os("TW_PYTHON").unwrap_or_else(|| "/usr/bin/python3".into())
}

/// `tests/scripts/NAME`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// Runs `scripts/NAME args` with [`python`]: its stdout parsed as JSON, or what went wrong.
pub async fn python_json(name: &str, args: &[&str]) -> Result<Value, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(python())
            .arg(script(name))
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("{name} {args:?} took more than 20 s"))?
    .map_err(|e| format!("run {name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} {args:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{name} {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn dbus_tool(args: &[&str]) -> Result<Value, String> {
    python_json("dbus-tool.py", args).await
}

/// Writes `<data dir>/desktop.json`, the tray app's own settings.
pub fn write_settings(env: &Env, notifications: bool, clear_clipboard_secs: u64) {
    let settings = json!({
        "notifications": notifications,
        "clear_clipboard_secs": clear_clipboard_secs,
        "start_at_login": false,
    });
    std::fs::write(env.data_dir.join("desktop.json"), settings.to_string())
        .expect("write desktop.json");
}

/// The pid in the engine lock's holder file, if that process is alive.
pub fn engine_pid(env: &Env) -> Option<u32> {
    let holder = env.engine_holder()?;
    let pid = u32::try_from(holder["pid"].as_u64()?).ok()?;
    proc::alive(pid).then_some(pid)
}

/// A countdown such as "59m 12s", "1h 2m", "45s" or "2d 3h", in seconds; `None` otherwise.
pub fn countdown_seconds(text: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut parts = 0;
    for part in text.split_whitespace() {
        let unit = part.chars().last()?;
        let n: i64 = part[..part.len() - unit.len_utf8()].parse().ok()?;
        total += n * match unit {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        parts += 1;
    }
    (parts > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_and_labels_parse() {
        assert_eq!(countdown_seconds("59m 12s"), Some(3552));
        assert_eq!(countdown_seconds("1h 2m"), Some(3720));
        assert_eq!(countdown_seconds("45s"), Some(45));
        assert_eq!(countdown_seconds("expired"), None);
        assert_eq!(countdown_seconds(""), None);
        assert_eq!(
            dbusmenu_text("Copy fb token — not__connected"),
            "Copy fb token — not_connected"
        );
        assert_eq!(dbusmenu_text("_Quit"), "Quit");
    }
}
