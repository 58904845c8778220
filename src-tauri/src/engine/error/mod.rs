//! What can go wrong in an engine call, in one table: every [`EngineError`] has one
//! [`ErrorKind`] (its stable code, shared by the HTTP API, the CLI and the window) and, where
//! the user can do something about it, a [`Remedy`]. Front ends word the remedy in their own
//! terms ("run `tokenwarden connect fitbit`", a Reconnect button); the API maps the kind to a
//! status code and nothing else.

use serde::Serialize;

use crate::engine::api_keys::ApiKeyError;
use crate::engine::config::ConfigError;
use crate::engine::history::HistoryError;
use crate::engine::lock::LockError;
use crate::engine::names::{AccountName, Deadline};
use crate::engine::provider::RefreshError;
use crate::engine::store::item::StoreError;

pub mod remedy;
pub use remedy::Remedy;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no account is named `{0}` in the config")]
    UnknownAccount(AccountName),
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A new token set arrived but could not be written to the store: it is served from
    /// memory and the write is retried; a process that exits now loses it unless the token
    /// journal holds it.
    #[error("{account}: the new token could not be saved in the {} ({source}); {}", source.backing.name(), if *journaled { "it is in the local token journal, and the write is retried (at the next start at the latest)" } else { "it is kept in memory and the write is retried" })]
    Unsaved {
        account: AccountName,
        #[source]
        source: StoreError,
        /// The token journal holds the set: an exit now does not lose it.
        journaled: bool,
    },
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    /// No token valid for as long as asked, and the engine will not (or may not) fetch one now.
    #[error("{account}: {message}")]
    NoValidToken {
        account: AccountName,
        /// Why: decides the code (not connected, needs reconnect, backoff).
        kind: ErrorKind,
        message: String,
        remedy: Option<Remedy>,
    },
    /// Clients keep reporting freshly refreshed tokens as rejected: another refresh will
    /// not help, so reports are refused for a while.
    #[error("{account}: {count} tokens were reported rejected right after being refreshed in the last {window_minutes} minutes; not refreshing again for reports (the API may refuse this account for another reason: check its scopes and permissions)")]
    RejectedLoop {
        account: AccountName,
        count: usize,
        window_minutes: u64,
        until: Deadline,
    },
    /// Callers asked for more refreshes of this account (refresh now, `min_valid`) than the
    /// burst allows: no key holder can make the engine hammer a provider.
    #[error("{account}: too many refreshes asked for: {} in a row, then one per {}s ([refresh] min_interval); try again in {}s", crate::engine::bounds::ASKED_REFRESH_BURST, floor.as_secs(), wait.as_secs().max(1))]
    TooSoon {
        account: AccountName,
        floor: std::time::Duration,
        wait: std::time::Duration,
    },
    /// 95% of today's WeChat token fetches are spent: refreshes callers ask for wait for
    /// midnight in Beijing, and the rest keeps the scheduled ones going.
    #[error("{account}: {used} of today's {limit} WeChat token fetches for this appid are spent; refreshes asked for are refused until the count resets at {resets_at} (midnight in Beijing), so that the scheduled ones can keep the token alive")]
    QuotaNearlySpent {
        account: AccountName,
        used: u32,
        limit: u32,
        resets_at: Deadline,
    },
    /// `[api] ask_first`: the program was not allowed to take the token.
    #[error("{account}: {message}")]
    NotApproved {
        account: AccountName,
        message: String,
    },
    #[error("{account}: {message}")]
    Usage {
        account: AccountName,
        message: String,
    },
    #[error("{0}")]
    Io(String),
}

/// The stable error codes (`{"error": code}` in the API, `code` in the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Config,
    UnknownAccount,
    BadRequest,
    NotConnected,
    NeedsReconnect,
    ProviderUnavailable,
    RefreshFailed,
    KeychainUnavailable,
    HistoryUnavailable,
    Locked,
    RejectedLoop,
    TooSoon,
    QuotaNearlySpent,
    ApiKey,
    NotApproved,
    Unavailable,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::UnknownAccount => "unknown_account",
            Self::BadRequest => "bad_request",
            Self::NotConnected => "not_connected",
            Self::NeedsReconnect => "needs_reconnect",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::RefreshFailed => "refresh_failed",
            Self::KeychainUnavailable => "keychain_unavailable",
            Self::HistoryUnavailable => "history_unavailable",
            Self::Locked => "locked",
            Self::RejectedLoop => "rejected_loop",
            Self::TooSoon => "too_soon",
            Self::QuotaNearlySpent => "quota_nearly_spent",
            Self::ApiKey => "api_key",
            Self::NotApproved => "not_approved",
            Self::Unavailable => "unavailable",
        }
    }
}

impl RefreshError {
    /// What the user can do; `None` when only waiting helps and the time is not known.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Self::Rejected { .. }
            | Self::Interrupted { .. }
            | Self::Gone { .. }
            | Self::NotConnected { .. } => Some(Remedy::Reconnect),
            Self::BadClient { .. } | Self::MissingSecret { .. } => Some(Remedy::SetSecret),
            Self::Provider { code, .. } if code == "40125" || code == "40001" => {
                Some(Remedy::SetSecret)
            }
            Self::Setup { .. } => Some(Remedy::FixConfig { line: None }),
            Self::KeychainUnavailable { store, .. } => Some(store.remedy()),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotConnected { .. } => ErrorKind::NotConnected,
            // Kept as the code scripts already test for: the user must act before it works.
            Self::MissingSecret { .. } => ErrorKind::NeedsReconnect,
            Self::KeychainUnavailable { .. } => ErrorKind::KeychainUnavailable,
            Self::SharedStore { .. } => ErrorKind::Unavailable,
            e if e.is_transient() => ErrorKind::ProviderUnavailable,
            _ => ErrorKind::RefreshFailed,
        }
    }
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Config,
            Self::UnknownAccount(_) => ErrorKind::UnknownAccount,
            Self::Refresh(e) => e.kind(),
            // The code scripts know, for every store: what the message and remedy name differs.
            Self::Store(_) | Self::Unsaved { .. } => ErrorKind::KeychainUnavailable,
            Self::History(_) => ErrorKind::HistoryUnavailable,
            Self::Lock(_) => ErrorKind::Locked,
            Self::ApiKey(ApiKeyError::Keychain(_)) => ErrorKind::KeychainUnavailable,
            Self::ApiKey(_) => ErrorKind::ApiKey,
            Self::NoValidToken { kind, .. } => *kind,
            Self::RejectedLoop { .. } => ErrorKind::RejectedLoop,
            Self::TooSoon { .. } => ErrorKind::TooSoon,
            Self::QuotaNearlySpent { .. } => ErrorKind::QuotaNearlySpent,
            Self::Usage { .. } => ErrorKind::BadRequest,
            Self::NotApproved { .. } => ErrorKind::NotApproved,
            Self::Io(_) => ErrorKind::Unavailable,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Self::Config(e) => Some(Remedy::FixConfig { line: e.line() }),
            Self::Refresh(e) => e.remedy(),
            Self::Store(e) | Self::Unsaved { source: e, .. } => Some(e.remedy()),
            Self::Lock(LockError::HeldByEngine { pid, .. }) => {
                Some(Remedy::StopOtherEngine { pid: *pid })
            }
            Self::NoValidToken { remedy, .. } => remedy.clone(),
            Self::RejectedLoop { until, .. } => Some(Remedy::WaitUntil { until: *until }),
            Self::TooSoon { wait, .. } => Some(Remedy::WaitUntil {
                until: Deadline::after(crate::engine::clock::now(), *wait),
            }),
            Self::QuotaNearlySpent { resets_at, .. } => {
                Some(Remedy::WaitUntil { until: *resets_at })
            }
            _ => None,
        }
    }

    /// The store a failed read or write was about ("keychain", "sealed database", "shared
    /// store"), for a message about several failures.
    pub fn store_name(&self) -> Option<&'static str> {
        match self {
            Self::Store(e) | Self::Unsaved { source: e, .. } => Some(e.backing.name()),
            _ => None,
        }
    }

    /// How long to wait before asking again, when that is known (`Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::TooSoon { wait, .. } => Some(*wait),
            Self::QuotaNearlySpent { resets_at, .. } => {
                Some(resets_at.remaining(crate::engine::clock::now()))
            }
            _ => None,
        }
    }

    /// The account the error is about, for wording remedies.
    pub fn account(&self) -> Option<&AccountName> {
        match self {
            Self::UnknownAccount(a)
            | Self::Unsaved { account: a, .. }
            | Self::NoValidToken { account: a, .. }
            | Self::RejectedLoop { account: a, .. }
            | Self::TooSoon { account: a, .. }
            | Self::QuotaNearlySpent { account: a, .. }
            | Self::NotApproved { account: a, .. }
            | Self::Usage { account: a, .. } => Some(a),
            Self::Refresh(e) => Some(e.account()),
            _ => None,
        }
    }

    pub(crate) fn usage(account: &AccountName, message: impl Into<String>) -> Self {
        Self::Usage {
            account: account.clone(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_code() {
        let kinds = [
            ErrorKind::Config,
            ErrorKind::UnknownAccount,
            ErrorKind::BadRequest,
            ErrorKind::NotConnected,
            ErrorKind::NeedsReconnect,
            ErrorKind::ProviderUnavailable,
            ErrorKind::RefreshFailed,
            ErrorKind::KeychainUnavailable,
            ErrorKind::HistoryUnavailable,
            ErrorKind::Locked,
            ErrorKind::RejectedLoop,
            ErrorKind::TooSoon,
            ErrorKind::QuotaNearlySpent,
            ErrorKind::ApiKey,
            ErrorKind::NotApproved,
            ErrorKind::Unavailable,
        ];
        let mut codes: Vec<_> = kinds.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        // The serde name and the code are the same word.
        for kind in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.code());
        }
    }

    #[test]
    fn refusals_say_to_reconnect_and_transient_ones_do_not() {
        let account: AccountName = "fb".parse().unwrap();
        let refused = RefreshError::Rejected {
            account: account.clone(),
            provider: "fitbit".into(),
            code: "invalid_grant".into(),
        };
        assert_eq!(refused.remedy(), Some(Remedy::Reconnect));
        assert_eq!(refused.kind(), ErrorKind::RefreshFailed);
        let busy = RefreshError::Http {
            account: account.clone(),
            provider: "fitbit".into(),
            status: 503,
            code: None,
            retry_after: None,
        };
        assert_eq!(busy.remedy(), None);
        assert_eq!(busy.kind(), ErrorKind::ProviderUnavailable);
    }

    #[test]
    fn a_store_failure_names_its_store_and_only_the_keychain_is_to_be_unlocked() {
        use crate::engine::store::item::Backing;
        let account: AccountName = "fb".parse().unwrap();
        let unsaved = |backing| EngineError::Unsaved {
            account: account.clone(),
            source: StoreError {
                backing,
                entry: "tokens:fb".into(),
                message: "Connection refused".into(),
                too_large: false,
            },
            journaled: false,
        };
        let redis = unsaved(Backing::SharedStore {
            url: "redis://10.0.0.5:6379".into(),
        });
        assert!(!redis.to_string().contains("keychain"), "{redis}");
        assert!(
            redis.to_string().contains("saved in the shared store"),
            "{redis}"
        );
        assert_eq!(
            redis.remedy(),
            Some(Remedy::CheckStore {
                store: "the shared store (Redis at redis://10.0.0.5:6379)".into()
            })
        );
        // The code scripts test for stays what it was.
        assert_eq!(redis.code(), "keychain_unavailable");
        let keychain = unsaved(Backing::Keychain);
        assert!(
            keychain.to_string().contains("saved in the keychain"),
            "{keychain}"
        );
        assert_eq!(keychain.remedy(), Some(Remedy::UnlockKeychain));
    }
}
