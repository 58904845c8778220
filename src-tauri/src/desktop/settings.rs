//! The tray app's own settings, in `desktop.json` in the data dir (not secrets, not the
//! engine's config): notifications, clipboard clearing, start at login.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub notifications: bool,
    /// Clear the clipboard this long after a copy, if it still holds the token (0: never).
    pub clear_clipboard_secs: u64,
    pub start_at_login: bool,
    /// Without a tray: the notification after the window was first closed has been shown.
    pub told_how_to_return: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            notifications: true,
            clear_clipboard_secs: 60,
            start_at_login: false,
            told_how_to_return: false,
        }
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("desktop.json")
}

/// The saved settings; defaults when there are none. A file that does not parse is left
/// alone (and reported) rather than replaced.
pub fn load(data_dir: &Path) -> Settings {
    match std::fs::read(path(data_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "desktop.json is not valid; using defaults");
            Settings::default()
        }),
        Err(_) => Settings::default(),
    }
}

pub fn save(data_dir: &Path, settings: &Settings) -> std::io::Result<()> {
    crate::engine::own_data_dir(data_dir).map_err(std::io::Error::other)?;
    let json = serde_json::to_vec_pretty(settings).expect("serializes");
    crate::engine::replace_private_file(&path(data_dir), &json, 0o600)
}
