//! Copying a token: it goes from the engine to the clipboard without passing through the
//! window, marked as a secret so clipboard managers leave it out of their history (on
//! Linux `x-kde-passwordManagerHint: secret`, honoured by Klipper and others; the matching
//! hints on macOS and Windows). It is cleared after the configured delay if the clipboard
//! still holds it (the user may have copied something else meanwhile).
//!
//! The write goes through arboard itself because tauri-plugin-clipboard-manager (which wraps
//! arboard) cannot add the hint; reads and clearing go through the plugin.

use std::sync::Mutex;
use std::time::Duration;

use tauri::{AppHandle, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;

use crate::engine::secret::Secret;

/// The clipboard we own. On X11 and Wayland the copied text lives only as long as its owner
/// serves it, so one owner is kept for the life of the app.
#[derive(Default)]
pub struct Copier {
    owner: Mutex<Option<arboard::Clipboard>>,
}

impl Copier {
    fn write_secret(&self, text: &str) -> Result<(), arboard::Error> {
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        let clipboard = match owner.as_mut() {
            Some(clipboard) => clipboard,
            None => owner.insert(arboard::Clipboard::new()?),
        };
        let set = clipboard.set();
        #[cfg(any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd"
        ))]
        let set = arboard::SetExtLinux::exclude_from_history(set);
        #[cfg(target_os = "macos")]
        let set = arboard::SetExtApple::exclude_from_history(set);
        #[cfg(target_os = "windows")]
        let set = arboard::SetExtWindows::exclude_from_history(set);
        set.text(text.to_owned())
    }
}

pub fn copy<R: Runtime>(
    app: &AppHandle<R>,
    copier: &Copier,
    token: &Secret,
    clear_after: Duration,
) -> Result<(), String> {
    copier
        .write_secret(token.expose())
        .map_err(|e| format!("could not write the clipboard: {e}"))?;
    if clear_after.is_zero() {
        return Ok(());
    }
    let (app, token) = (app.clone(), token.clone());
    std::thread::spawn(move || {
        std::thread::sleep(clear_after);
        let still_ours = app
            .clipboard()
            .read_text()
            .is_ok_and(|text| token.same_as(&text));
        if still_ours {
            if let Err(e) = app.clipboard().clear() {
                tracing::warn!(error = %e, "could not clear the clipboard");
            }
        }
    });
    Ok(())
}
