//! What front ends read: an account's view (names, states and times, never a secret) and
//! the one view that carries a secret on purpose, the token handed out.

use serde::{Deserialize, Serialize};

use crate::engine::account::state::{Severity, Status};
use crate::engine::error::remedy::Remedy;
use crate::engine::names::{AccountName, Deadline};
pub use crate::engine::provider::connects_with::ConnectsWith;
use crate::engine::secret::Secret;

/// One row of `list` and `GET /v1/accounts`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountView {
    pub name: AccountName,
    pub provider: String,
    pub status: Status,
    /// How much `status` asks of the user (`Status::severity`): front ends rank by this.
    /// An older running engine's view has none (a newer CLI still reads it: it shows the
    /// status, not the severity).
    #[serde(default)]
    pub severity: Severity,
    pub expires_at: Option<Deadline>,
    /// Whether a token is served now, so a front end may offer Copy: the rule that serves
    /// every token (`AccountState::servable`), whatever the status.
    #[serde(default)]
    pub can_copy: bool,
    /// The provider did not say when the token expires: `expires_at` is an estimate (an
    /// hour for a refreshable token, which is then refreshed; else it is served until a
    /// caller reports it refused).
    #[serde(default)]
    pub expiry_estimated: bool,
    pub last_refresh: Option<Deadline>,
    pub last_error: Option<String>,
    /// When the next refresh, retry or keychain read is due.
    pub next_refresh: Option<Deadline>,
    /// Failed attempts in the current episode (0 when healthy).
    pub attempt: u32,
    pub connects_with: ConnectsWith,
    /// When the refresh token itself stops working, where the provider says so.
    pub refresh_token_expires_at: Option<Deadline>,
    /// The current token set is only in memory: its keychain write failed and is retried.
    pub unsaved: bool,
    /// What the user can do about the current state, if anything.
    pub remedy: Option<Remedy>,
    /// Today's WeChat token fetches against the appid's daily allowance (`wechat` only).
    #[serde(default)]
    pub quota: Option<crate::engine::refresh::quota::Usage>,
}

impl AccountView {
    /// `can_copy` as it stands at `now`: a view is a snapshot, and the token it describes
    /// stops being served at `expires_at`, whether or not a newer view has arrived.
    pub fn can_copy_at(&self, now: std::time::SystemTime) -> bool {
        self.can_copy && self.expires_at.is_some_and(|e| !e.has_passed(now))
    }
}

/// A token handed out: the one place where a secret is serialized on purpose (and read
/// back, by the CLI from a running engine's answer).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenView {
    #[serde(serialize_with = "expose", deserialize_with = "secret")]
    pub access_token: Secret,
    pub token_type: String,
    pub expires_at: Deadline,
    pub expires_in: u64,
    pub scope: Option<String>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

fn expose<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}
