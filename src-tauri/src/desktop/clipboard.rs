//! Copying a token: it goes from the engine to the clipboard without passing through the
//! window, and is cleared after the configured delay if the clipboard still holds it (the
//! user may have copied something else meanwhile). Clipboard reads run off the main thread.

use std::time::Duration;

use tauri::{AppHandle, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;

use crate::engine::secret::Secret;

pub fn copy<R: Runtime>(
    app: &AppHandle<R>,
    token: &Secret,
    clear_after: Duration,
) -> Result<(), String> {
    app.clipboard()
        .write_text(token.expose().to_owned())
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
