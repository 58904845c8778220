//! Where the app lives: in the tray, or, on a desktop that shows no tray (GNOME without the
//! AppIndicator extension), in its window. A tray icon nobody can see would leave the user
//! no way back once the window is closed, so the app asks the session bus whether a
//! StatusNotifierWatcher (the tray host the AppIndicator library registers with) runs.

use serde::Serialize;

/// The bus name a tray host owns (KDE, the GNOME AppIndicator extension, waybar, …).
#[cfg(target_os = "linux")]
const WATCHER: &str = "org.kde.StatusNotifierWatcher";

/// The mode the app runs in, and why: shown in Settings.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Home {
    /// `true`: tray icon and menu, the window on demand. `false`: the window is the app.
    pub tray: bool,
    pub why: String,
}

impl Home {
    /// Whether the window shows at start: always without a tray; with one, unless the app
    /// was started `--hidden` (start at login).
    pub fn shows_window_at_start(&self, hidden: bool) -> bool {
        !self.tray || !hidden
    }
}

/// Asks the session bus; a bus that cannot be asked counts as no tray (the window is
/// always reachable then).
#[cfg(target_os = "linux")]
pub fn detect() -> Home {
    match watcher_runs() {
        Ok(true) => Home {
            tray: true,
            why: format!("This desktop shows tray icons ({WATCHER} runs on the session bus)"),
        },
        Ok(false) => Home {
            tray: false,
            why: format!(
                "This desktop shows no tray icons (no {WATCHER} on the session bus; on GNOME the AppIndicator extension provides one): the window is the app, and closing it keeps Tokenwarden running for programs"
            ),
        },
        Err(e) => Home {
            tray: false,
            why: format!(
                "The session bus could not be asked about a tray ({e}): the window is the app, and closing it keeps Tokenwarden running for programs"
            ),
        },
    }
}

#[cfg(not(target_os = "linux"))]
pub fn detect() -> Home {
    Home {
        tray: true,
        why: "This system always has a tray (the notification area or the menu bar)".into(),
    }
}

#[cfg(target_os = "linux")]
fn watcher_runs() -> Result<bool, dbus::Error> {
    use std::time::Duration;
    let bus = dbus::blocking::Connection::new_session()?;
    let proxy = bus.with_proxy(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        Duration::from_secs(2),
    );
    let (owned,): (bool,) =
        proxy.method_call("org.freedesktop.DBus", "NameHasOwner", (WATCHER,))?;
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(tray: bool) -> Home {
        Home {
            tray,
            why: String::new(),
        }
    }

    #[test]
    fn hidden_starts_without_a_window_only_where_there_is_a_tray() {
        assert!(!home(true).shows_window_at_start(true));
        assert!(home(true).shows_window_at_start(false));
        assert!(home(false).shows_window_at_start(true));
        assert!(home(false).shows_window_at_start(false));
    }
}
