//! What front ends redraw from. Names, states and messages only, never a secret. An event
//! is a hint to re-read the snapshot: a slow subscriber that lags just redraws.

use serde::Serialize;

use super::names::{AccountName, Deadline};

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineEvent {
    HealthChanged {
        account: AccountName,
        status: &'static str,
    },
    Refreshed {
        account: AccountName,
        expires_at: Deadline,
    },
    RefreshFailed {
        account: AccountName,
        message: String,
        gave_up: bool,
    },
    /// The new token could not be saved; it is kept in memory and the write is retried.
    KeychainWriteFailed {
        account: AccountName,
        message: String,
    },
}
