//! The main window: shown, focused, and built again from `tauri.conf.json` when it was
//! closed (closing destroys it, so the app weighs little in the tray), and how long it took
//! to draw.

use std::sync::Mutex;
use std::time::Instant;

use tauri::{AppHandle, Manager, Runtime, State};

/// When the app was launched and when the window was last built, so the page's first draw
/// can be logged against both (`make bench` reads the line; no timer runs otherwise).
pub struct Clock {
    launched: Instant,
    built: Mutex<Option<Instant>>,
}

impl Clock {
    pub fn new(launched: Instant) -> Self {
        Self {
            launched,
            built: Mutex::new(None),
        }
    }
}

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
            let building = Instant::now();
            match tauri::WebviewWindowBuilder::from_config(app, config).and_then(|b| b.build()) {
                Ok(window) => {
                    if let Some(clock) = app.try_state::<Clock>() {
                        *clock.built.lock().expect("poisoned") = Some(building);
                    }
                    window
                }
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

/// The page drew its first list, `page_ms` after it began loading: logged once per window
/// built, with the time since it was built (Open) and since launch.
#[tauri::command(rename_all = "snake_case")]
pub fn window_drawn(clock: State<'_, Clock>, page_ms: f64) {
    let Some(built) = clock.built.lock().expect("poisoned").take() else {
        return;
    };
    tracing::info!(
        since_open_ms = built.elapsed().as_millis() as u64,
        since_launch_ms = clock.launched.elapsed().as_millis() as u64,
        page_ms = page_ms.max(0.0) as u64,
        "window drawn"
    );
}
