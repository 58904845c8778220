//! Account health and the views front ends read. Health variants carry only what is true
//! in that state; views hold names, states and times, never a secret.

use serde::{Deserialize, Serialize};

use super::names::{AccountName, Deadline};
use super::secret::Secret;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    NotConnected,
    Fresh,
    Refreshing,
    /// A transient failure; the next attempt is due at `next_try`.
    Retrying {
        attempt: u32,
        next_try: Deadline,
    },
    /// A permanent failure: nothing is tried until the user acts.
    NeedsReconnect,
}

impl Health {
    pub fn status(&self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::Fresh => "fresh",
            Self::Refreshing => "refreshing",
            Self::Retrying { .. } => "retrying",
            Self::NeedsReconnect => "needs_reconnect",
        }
    }

    /// For "the worst state" (tray icon colour, exit codes of scripts).
    pub fn severity(&self) -> u8 {
        match self {
            Self::Fresh | Self::Refreshing => 0,
            Self::NotConnected => 1,
            Self::Retrying { .. } => 2,
            Self::NeedsReconnect => 3,
        }
    }
}

/// One row of `list` and `GET /v1/accounts`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountView {
    pub name: AccountName,
    pub provider: String,
    pub status: String,
    pub expires_at: Option<Deadline>,
    pub last_refresh: Option<Deadline>,
    pub last_error: Option<String>,
}

/// A token handed out: the one place where a secret is serialized on purpose.
#[derive(Clone, Debug, Serialize)]
pub struct TokenView {
    #[serde(serialize_with = "expose")]
    pub access_token: Secret,
    pub token_type: String,
    pub expires_at: Deadline,
    pub expires_in: u64,
    pub scope: Option<String>,
}

impl<'de> Deserialize<'de> for TokenView {
    /// For the CLI reading a running engine's answer.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            access_token: String,
            token_type: String,
            expires_at: Deadline,
            expires_in: u64,
            scope: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        Ok(Self {
            access_token: Secret::new(raw.access_token),
            token_type: raw.token_type,
            expires_at: raw.expires_at,
            expires_in: raw.expires_in,
            scope: raw.scope,
        })
    }
}

fn expose<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}
