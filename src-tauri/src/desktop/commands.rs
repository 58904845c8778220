//! The window's commands: each maps one engine operation (or one settings read/write) and
//! nothing more. Errors carry the engine's code and remedy (`UiError`). No command returns
//! an access token: copying goes from the engine to the clipboard in Rust.

use std::time::Duration;

use serde::Serialize;
use tauri::{AppHandle, State};

use super::error::UiError;
use super::settings::{self, Settings};
use super::Shell;
use crate::engine::{
    catalog, AccountName, AccountView, ConnectFlow, ConnectStart, ConnectStatus, Entry, Finding,
    KeyInfo, NewAccount, PresetInfo, Secret, TakerRow, MAX_HISTORY_ROWS,
};

type Result<T> = std::result::Result<T, UiError>;

/// How long a flow begun in the window waits for the browser.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Every account's view, or with `names` only those (the ones engine events named since the
/// window last read them): with 100,000 accounts, a refresh re-reads one view, not 34 MB.
#[tauri::command(rename_all = "snake_case")]
pub async fn accounts(
    shell: State<'_, Shell>,
    names: Option<Vec<AccountName>>,
) -> Result<Vec<AccountView>> {
    let Ok(engine) = shell.engine() else {
        return Ok(Vec::new());
    };
    Ok(match names {
        Some(names) => engine.views_of(&names),
        None => engine.snapshot(),
    })
}

#[tauri::command(rename_all = "snake_case")]
pub async fn history(
    shell: State<'_, Shell>,
    account: Option<AccountName>,
    limit: Option<usize>,
) -> Result<Vec<Entry>> {
    let limit = limit.unwrap_or(200).clamp(1, MAX_HISTORY_ROWS);
    Ok(shell
        .engine()?
        .history(account.as_ref().map(std::slice::from_ref), limit)
        .await?)
}

/// What `tokenwarden doctor` finds about one account, for its card (remedies worded as the
/// CLI words them: the window shows the same text).
#[tauri::command(rename_all = "snake_case")]
pub async fn diagnose(shell: State<'_, Shell>, name: AccountName) -> Result<Vec<Finding>> {
    let engine = shell.engine()?;
    let view = engine.view(&name)?;
    Ok(engine.diagnose(&view, None).await)
}

/// Who took the accounts' tokens, for the cards' "Used by".
#[tauri::command(rename_all = "snake_case")]
pub async fn takers(shell: State<'_, Shell>) -> Result<Vec<TakerRow>> {
    Ok(shell.engine()?.takers(None).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn refresh_now(shell: State<'_, Shell>, name: AccountName) -> Result<AccountView> {
    let engine = shell.engine()?;
    engine.refresh(&name).await?;
    Ok(engine.view(&name)?)
}

#[derive(Serialize)]
pub struct Copied {
    clear_after_secs: u64,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn copy_token(
    app: AppHandle,
    shell: State<'_, Shell>,
    name: AccountName,
) -> Result<Copied> {
    let clear_after_secs = shell.copy_token(&app, &name).await?;
    Ok(Copied { clear_after_secs })
}

#[tauri::command(rename_all = "snake_case")]
pub async fn begin_connect(
    app: AppHandle,
    shell: State<'_, Shell>,
    name: AccountName,
    device: bool,
) -> Result<ConnectStart> {
    let flow = ConnectFlow::device(device);
    let start = shell
        .engine()?
        .begin_connect(&name, flow, CONSENT_TIMEOUT)
        .await?;
    if let ConnectStart::Browser {
        authorization_url, ..
    } = &start
    {
        super::open_in_browser(&app, authorization_url);
    }
    Ok(start)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn cancel_connect(shell: State<'_, Shell>, name: AccountName) -> Result<ConnectStatus> {
    Ok(shell.engine()?.cancel_connect_settled(&name).await?)
}

#[derive(Serialize)]
pub struct Removed {
    warning: Option<String>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn remove_account(shell: State<'_, Shell>, name: AccountName) -> Result<Removed> {
    let warning = shell.engine()?.remove_account(&name).await?;
    Ok(Removed { warning })
}

#[tauri::command(rename_all = "snake_case")]
pub fn presets() -> Vec<PresetInfo> {
    catalog()
}

#[derive(serde::Deserialize)]
pub struct AddForm {
    #[serde(flatten)]
    account: NewAccount,
    #[serde(default)]
    secret: Option<String>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn add_account(shell: State<'_, Shell>, form: AddForm) -> Result<AccountView> {
    let secret = form.secret.map(Secret::new);
    Ok(shell.engine()?.add_account(&form.account, secret).await?)
}

/// A new client secret for an existing account: straight to the keychain.
#[tauri::command(rename_all = "snake_case")]
pub async fn set_client_secret(
    shell: State<'_, Shell>,
    name: AccountName,
    secret: String,
) -> Result<AccountView> {
    Ok(shell
        .engine()?
        .set_client_secret(&name, Secret::new(secret))
        .await?)
}

#[derive(Serialize)]
pub struct ConfigStatus {
    path: String,
    error: Option<ConfigProblem>,
}

#[derive(Clone, Serialize)]
pub struct ConfigProblem {
    pub message: String,
    pub line: Option<usize>,
}

#[tauri::command(rename_all = "snake_case")]
pub fn config_status(shell: State<'_, Shell>) -> ConfigStatus {
    ConfigStatus {
        path: shell.ctx.config_path.display().to_string(),
        error: shell.problem(),
    }
}

/// Re-reads the config file; starts the engine if a bad file kept it from starting.
#[tauri::command(rename_all = "snake_case")]
pub async fn reload_config(app: AppHandle, shell: State<'_, Shell>) -> Result<serde_json::Value> {
    let count = match shell.engine() {
        Ok(engine) => engine.reload_config().await?,
        Err(_) => super::start_engine(&app, &shell).await?,
    };
    Ok(serde_json::json!({ "accounts": count }))
}

#[derive(Serialize)]
pub struct SettingsView {
    api_listen: String,
    /// Tray or window, and why (desktop/home.rs).
    home: super::home::Home,
    #[serde(flatten)]
    settings: Settings,
}

#[tauri::command(rename_all = "snake_case")]
pub fn settings(shell: State<'_, Shell>) -> SettingsView {
    shell.settings_view()
}

#[tauri::command(rename_all = "snake_case")]
pub fn save_settings(
    app: AppHandle,
    shell: State<'_, Shell>,
    settings: Settings,
) -> Result<SettingsView> {
    if settings.start_at_login != shell.settings().start_at_login {
        super::autostart::apply(&app, settings.start_at_login)
            .map_err(|e| UiError::new("autostart", e))?;
    }
    settings::save(&shell.ctx.data_dir, &settings)
        .map_err(|e| UiError::new("io", format!("could not save the settings: {e}")))?;
    *shell.settings.lock().expect("poisoned") = settings;
    Ok(shell.settings_view())
}

/// Quits the app (and its engine): the window's way out on a desktop without a tray.
#[tauri::command(rename_all = "snake_case")]
pub fn quit(app: AppHandle) {
    app.exit(0);
}

#[tauri::command(rename_all = "snake_case")]
pub fn api_keys(shell: State<'_, Shell>) -> Result<Vec<KeyInfo>> {
    Ok(shell.engine()?.api_keys().list()?)
}

#[derive(Serialize)]
pub struct NewKey {
    label: String,
    /// Shown once: the user asked for it.
    key: String,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_api_key(shell: State<'_, Shell>, label: String) -> Result<NewKey> {
    // Read-only, like the CLI's without `--write`: the window changes accounts itself.
    let key = shell
        .engine()?
        .api_keys()
        .create(&label, None, false)
        .await?;
    Ok(NewKey {
        label,
        key: key.expose().to_owned(),
    })
}

#[tauri::command(rename_all = "snake_case")]
pub async fn revoke_api_key(shell: State<'_, Shell>, label: String) -> Result<()> {
    Ok(shell.engine()?.api_keys().revoke(&label).await?)
}

impl Shell {
    fn settings_view(&self) -> SettingsView {
        let api_listen = self
            .engine()
            .map(|e| e.config().api.listen.to_string())
            .unwrap_or_default();
        SettingsView {
            api_listen,
            home: self.home.clone(),
            settings: self.settings(),
        }
    }
}
