//! Ask first in the window: the asks waiting (the window shows the oldest as a prompt and
//! the engine holds the request meanwhile), the user's answer, and in Settings the switch
//! and the programs allowed always, each revocable.

use serde::Serialize;
use tauri::{AppHandle, State};

use super::error::UiError;
use super::Shell;
use crate::engine::{AccountName, Answer, Approval, Ask};

type Result<T> = std::result::Result<T, UiError>;

#[tauri::command(rename_all = "snake_case")]
pub async fn asks(shell: State<'_, Shell>) -> Result<Vec<Ask>> {
    Ok(shell.engine().map(|e| e.asks()).unwrap_or_default())
}

#[tauri::command(rename_all = "snake_case")]
pub async fn answer_ask(shell: State<'_, Shell>, id: u64, answer: Answer) -> Result<()> {
    Ok(shell.engine()?.answer(id, answer).await?)
}

/// A program `[api.allow]` lets take tokens without asking.
#[derive(Serialize)]
pub struct AllowedInConfig {
    exe: String,
    /// Empty: every account.
    accounts: Vec<AccountName>,
}

#[derive(Serialize)]
pub struct Approvals {
    ask_first: bool,
    ask_timeout_secs: u64,
    approvals: Vec<Approval>,
    allowed_in_config: Vec<AllowedInConfig>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn approvals(shell: State<'_, Shell>) -> Result<Approvals> {
    let engine = shell.engine()?;
    let config = engine.config();
    let asking = &config.api.asking;
    Ok(Approvals {
        ask_first: asking.ask_first,
        ask_timeout_secs: asking.timeout.as_secs(),
        approvals: engine.approvals().await?,
        allowed_in_config: asking
            .allow
            .iter()
            .map(|(exe, allowed)| AllowedInConfig {
                exe: exe.clone(),
                accounts: match allowed {
                    crate::engine::Allowed::Every => Vec::new(),
                    crate::engine::Allowed::Only(names) => names.clone(),
                },
            })
            .collect(),
    })
}

#[tauri::command(rename_all = "snake_case")]
pub async fn revoke_approval(
    shell: State<'_, Shell>,
    exe: String,
    account: AccountName,
) -> Result<Approvals> {
    shell.engine()?.revoke_approval(&exe, &account).await?;
    approvals(shell).await
}

/// Turns `[api] ask_first` on or off in the config file.
#[tauri::command(rename_all = "snake_case")]
pub async fn set_ask_first(shell: State<'_, Shell>, on: bool) -> Result<Approvals> {
    shell.engine()?.set_ask_first(on).await?;
    approvals(shell).await
}

/// A program waits for the user: the window comes forward with the prompt.
pub fn asked(app: &AppHandle) {
    super::window::open_window(app);
}
