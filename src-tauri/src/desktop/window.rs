//! The main window: shown, focused, and built again from `tauri.conf.json` when it was
//! closed (closing destroys it, so the app weighs little in the tray).

use tauri::{AppHandle, Manager, Runtime};

/// Shows and focuses the main window, building it if there is none. Closing the window
/// destroys it (`desktop::run`): the page and WebKit's web process go with it, so the app
/// weighs little in the tray, and it is built again here when it is opened.
pub fn open_window<R: Runtime>(app: &AppHandle<R>) {
    let window = match app.get_webview_window("main") {
        Some(window) => window,
        None => {
            let Some(config) = app.config().app.windows.iter().find(|w| w.label == "main") else {
                tracing::warn!("tauri.conf.json has no window labelled main");
                return;
            };
            match tauri::WebviewWindowBuilder::from_config(app, config).and_then(|b| b.build()) {
                Ok(window) => window,
                Err(e) => {
                    tracing::warn!(error = %e, "could not open the window");
                    return;
                }
            }
        }
    };
    for result in [window.unminimize(), window.show(), window.set_focus()] {
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not show the window");
        }
    }
}
