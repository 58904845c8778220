//! The tray app's build step: embeds `tauri.conf.json` and the UI, and turns the list of the
//! window's commands into permissions that `capabilities/main.json` grants to `main` only.

/// Every command the window may call (src/desktop/commands.rs, asks.rs, window.rs).
#[cfg(feature = "desktop")]
const COMMANDS: &[&str] = &[
    "accounts",
    "history",
    "takers",
    "diagnose",
    "refresh_now",
    "copy_token",
    "begin_connect",
    "cancel_connect",
    "remove_account",
    "presets",
    "add_account",
    "set_client_secret",
    "config_status",
    "reload_config",
    "settings",
    "save_settings",
    "api_keys",
    "create_api_key",
    "revoke_api_key",
    "quit",
    "asks",
    "answer_ask",
    "approvals",
    "revoke_approval",
    "set_ask_first",
    "window_drawn",
];

fn main() {
    #[cfg(feature = "desktop")]
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build step");
}
