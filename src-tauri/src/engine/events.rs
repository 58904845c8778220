//! What front ends redraw from. Names, states and messages only, never a secret. An event
//! is a hint to re-read the snapshot: a slow subscriber that lags just redraws.
//! The "one notification per failure episode" rule is applied before an event is sent
//! (see `state::Notice`), so `RefreshFailed` and `Recovered` can be shown as they come.

use serde::{Deserialize, Serialize};

use super::account::state::Status;
use super::history::Trigger;
use super::names::{AccountName, Deadline};

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineEvent {
    StatusChanged {
        account: AccountName,
        from: Status,
        to: Status,
    },
    Refreshed {
        account: AccountName,
        expires_at: Deadline,
        trigger: Trigger,
    },
    /// The first failure of an episode (`first`), or giving up into `needs_reconnect`
    /// (`gave_up`); never one per retry.
    RefreshFailed {
        account: AccountName,
        code: String,
        message: String,
        first: bool,
        gave_up: bool,
    },
    /// The first success after a failure episode.
    Recovered {
        account: AccountName,
    },
    ConnectProgress {
        account: AccountName,
        stage: ConnectStage,
        message: Option<String>,
    },
    /// The new token could not be saved; it is kept in memory and the write is retried.
    /// (Named for the first store there was; `store` says which one refused.)
    KeychainWriteFailed {
        account: AccountName,
        message: String,
        /// "keychain", "sealed database" or "shared store".
        store: &'static str,
    },
    /// A token set that was only in memory is now in the keychain.
    Saved {
        account: AccountName,
    },
    /// Clients keep reporting fresh tokens as rejected; reports no longer refresh for a while.
    ReportsRefused {
        account: AccountName,
        message: String,
    },
    ConfigReloaded {
        accounts: usize,
    },
    /// `[api] ask_first`: a program waits for the user to allow it (`Engine::asks`).
    AskStarted {
        account: AccountName,
        id: u64,
    },
    /// The ask was answered or its time ran out.
    AskEnded {
        account: AccountName,
        id: u64,
    },
    /// The refresh token stops working at `by`: reconnect before then (once per deadline,
    /// `[refresh] reconnect_warning` before it).
    ReconnectSoon {
        account: AccountName,
        by: Deadline,
    },
    /// 80% of today's WeChat token fetches for this account's appid are spent (once a day).
    QuotaWarning {
        account: AccountName,
        used: u32,
        limit: u32,
        resets_at: Deadline,
    },
}

impl EngineEvent {
    /// The account the event is about; `None` for the whole engine.
    pub fn account(&self) -> Option<&AccountName> {
        match self {
            Self::StatusChanged { account, .. }
            | Self::Refreshed { account, .. }
            | Self::RefreshFailed { account, .. }
            | Self::Recovered { account }
            | Self::ConnectProgress { account, .. }
            | Self::KeychainWriteFailed { account, .. }
            | Self::Saved { account }
            | Self::ReportsRefused { account, .. }
            | Self::QuotaWarning { account, .. }
            | Self::ReconnectSoon { account, .. }
            | Self::AskStarted { account, .. }
            | Self::AskEnded { account, .. } => Some(account),
            Self::ConfigReloaded { .. } => None,
        }
    }
}

/// Where a consent flow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectStage {
    /// No flow has run since the engine started.
    None,
    /// The browser (or the device) has the user; the engine waits for the redirect.
    Waiting,
    Completed,
    Failed,
    Cancelled,
}
