//! An account's state as one enum whose variants carry only what is true in them, and its
//! transitions as pure functions of (state, what happened, now, jitter). The engine holds
//! the state under its lock and swaps it through these functions, so every rule about
//! states ("one notification per failure episode", "a permanent failure waits for the
//! user", "a token past its expiry shows as expired") lives here and is unit-tested.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::engine::account::timing;
use crate::engine::config::{RetrySettings, Schedule};
use crate::engine::error::remedy::Remedy;
use crate::engine::names::{AccountName, Deadline};
use crate::engine::provider::RefreshError;
use crate::engine::secret::TokenSet;

/// What front ends show (snake_case in JSON). Decided here, for every front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    NotConnected,
    Fresh,
    Refreshing,
    Retrying,
    NeedsReconnect,
    /// A stored token past its expiry that nothing is refreshing.
    Expired,
}

/// How much a status asks of the user, ranked once for every front end: the tray's icon
/// shows the worst, the window's summary and badge count `Attention` and `Bad`, and
/// `GET /v1/accounts` carries it beside the status. Declared from least to most.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Not connected: nothing to serve, and nothing has gone wrong yet. Below `Fine`, so one
    /// account waiting to be connected does not hide how the connected ones are.
    #[default]
    Idle,
    Fine,
    /// A refresh under way: routine, nothing to do.
    Busy,
    /// Something failed and the engine is retrying it by itself.
    Attention,
    /// Programs get no token, or nothing is tried until the user acts.
    Bad,
}

impl Status {
    /// Every status, for the tests that must cover them all.
    #[cfg(test)]
    pub const ALL: [Status; 6] = [
        Self::NotConnected,
        Self::Fresh,
        Self::Refreshing,
        Self::Retrying,
        Self::NeedsReconnect,
        Self::Expired,
    ];

    /// The one ranking of statuses (see [`Severity`]).
    pub fn severity(self) -> Severity {
        match self {
            Self::NotConnected => Severity::Idle,
            Self::Fresh => Severity::Fine,
            Self::Refreshing => Severity::Busy,
            // Not `Bad`: retries begin before the token expires (by default with a fifth of
            // its life left), so programs are usually still served, and the engine needs
            // nobody to go on.
            // Not `Busy` either: a failure that lasts outlives the token, so the user should
            // see it coming. One that already outlived it is still `Attention`, since the
            // status does not say whether a token is held; `can_copy` says whether one is
            // served, and the retry ends either way without the user.
            Self::Retrying => Severity::Attention,
            // A token past its expiry serves nobody, whatever is or is not running about it.
            Self::NeedsReconnect | Self::Expired => Severity::Bad,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::Fresh => "fresh",
            Self::Refreshing => "refreshing",
            Self::Retrying => "retrying",
            Self::NeedsReconnect => "needs_reconnect",
            Self::Expired => "expired",
        }
    }
}

/// Where an account is in a run of failures: decides which failures are worth telling the
/// user about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Episode {
    /// The last attempt worked (or there was none).
    Healthy,
    /// Transient failures so far: `attempt` of them.
    Failing { attempt: u32 },
    /// A permanent failure: the user was told to act.
    GaveUp,
}

/// A failure as the state keeps it: what to show and what the user can do. Built from a
/// [`RefreshError`], or from the saved state after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub remedy: Option<Remedy>,
}

impl From<&RefreshError> for Failure {
    fn from(e: &RefreshError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            remedy: e.remedy(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum AccountState {
    /// Nothing stored: the user must connect (or set the secret of a client-credentials account).
    NotConnected,
    /// The keychain item could not be read (yet): nothing is fetched until it can, since it
    /// may hold a refresh token that a fetch would make useless.
    Unread {
        attempt: u32,
        next_try: Deadline,
        reason: String,
    },
    Fresh {
        tokens: TokenSet,
        refresh_at: Deadline,
    },
    Refreshing {
        tokens: Option<TokenSet>,
        episode: Episode,
    },
    /// A transient failure; the next attempt is due at `next_try`.
    Retrying {
        tokens: Option<TokenSet>,
        attempt: u32,
        next_try: Deadline,
        error: Failure,
    },
    /// A permanent failure: nothing is tried until the user acts.
    NeedsReconnect {
        tokens: Option<TokenSet>,
        error: Failure,
    },
}

/// What a transition means for the user: at most one per failure episode, plus recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The first failure of an episode; retries follow silently.
    FirstFailure,
    /// Gave up: the user must act. `first` when no failure preceded it.
    GaveUp { first: bool },
    /// The first success after a failure episode.
    Recovered,
}

/// What is due for an account, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Refresh(Deadline),
    Retry(Deadline),
    Reread(Deadline),
}

impl AccountState {
    /// A connected account with a new token set, its next refresh scheduled by the rule
    /// (the jitter comes from the account and the token, so every process agrees on it).
    pub fn fresh(tokens: TokenSet, schedule: Schedule, account: &AccountName) -> Self {
        let jitter = timing::spread(account.as_str(), tokens.obtained_at);
        let refresh_at = Deadline::at(timing::refresh_at(
            tokens.obtained_at,
            tokens.expires_at,
            schedule,
            jitter,
        ));
        Self::Fresh { tokens, refresh_at }
    }

    /// After a keychain read: stored tokens, and whether the account had given up before
    /// the restart (a permanent failure stays one: retrying it would only fail again).
    pub fn from_stored(
        tokens: Option<TokenSet>,
        gave_up: Option<Failure>,
        schedule: Schedule,
        account: &AccountName,
    ) -> Self {
        match (tokens, gave_up) {
            (tokens, Some(error)) => Self::NeedsReconnect { tokens, error },
            (Some(tokens), None) => Self::fresh(tokens, schedule, account),
            (None, None) => Self::NotConnected,
        }
    }

    pub fn tokens(&self) -> Option<&TokenSet> {
        match self {
            Self::Fresh { tokens, .. } => Some(tokens),
            Self::Refreshing { tokens, .. }
            | Self::Retrying { tokens, .. }
            | Self::NeedsReconnect { tokens, .. } => tokens.as_ref(),
            Self::NotConnected | Self::Unread { .. } => None,
        }
    }

    /// The tokens to serve if the access token stays valid for `min_valid` from `now`: the
    /// rule behind every token served and every Copy a front end offers. Any status may
    /// serve: a token the provider refused to refresh is still good until it expires.
    pub fn servable(&self, now: SystemTime, min_valid: Duration) -> Option<&TokenSet> {
        self.tokens().filter(|t| {
            let left = t.expires_at.remaining(now);
            left > Duration::ZERO && left >= min_valid
        })
    }

    pub fn status(&self, now: SystemTime) -> Status {
        match self {
            Self::NotConnected => Status::NotConnected,
            // Being read for the first time is work in progress, not a failure.
            Self::Unread { attempt: 0, .. } => Status::Refreshing,
            Self::Unread { .. } | Self::Retrying { .. } => Status::Retrying,
            Self::Fresh { tokens, .. } if tokens.expires_at.has_passed(now) => Status::Expired,
            Self::Fresh { .. } => Status::Fresh,
            Self::Refreshing { .. } => Status::Refreshing,
            Self::NeedsReconnect { .. } => Status::NeedsReconnect,
        }
    }

    pub fn episode(&self) -> Episode {
        match self {
            Self::Refreshing { episode, .. } => *episode,
            Self::Retrying { attempt, .. } => Episode::Failing { attempt: *attempt },
            Self::NeedsReconnect { .. } => Episode::GaveUp,
            _ => Episode::Healthy,
        }
    }

    /// The last failure, while it still describes the account.
    pub fn error(&self) -> Option<&Failure> {
        match self {
            Self::Retrying { error, .. } | Self::NeedsReconnect { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn due(&self) -> Option<Due> {
        match self {
            Self::Fresh { refresh_at, .. } => Some(Due::Refresh(*refresh_at)),
            Self::Retrying { next_try, .. } => Some(Due::Retry(*next_try)),
            Self::Unread { next_try, .. } => Some(Due::Reread(*next_try)),
            _ => None,
        }
    }

    /// The time of the next refresh, retry or re-read, for views.
    pub fn next_at(&self) -> Option<Deadline> {
        self.due().map(|due| match due {
            Due::Refresh(at) | Due::Retry(at) | Due::Reread(at) => at,
        })
    }

    /// A refresh starts: the tokens stay servable while it runs.
    pub fn begin_refresh(self) -> Self {
        let episode = self.episode();
        Self::Refreshing {
            tokens: self.tokens().cloned(),
            episode,
        }
    }

    /// A refresh worked: fresh again, and "recovered" if it ended a failure episode.
    pub fn succeeded(
        self,
        tokens: TokenSet,
        schedule: Schedule,
        account: &AccountName,
    ) -> (Self, Option<Notice>) {
        let notice = (self.episode() != Episode::Healthy).then_some(Notice::Recovered);
        (Self::fresh(tokens, schedule, account), notice)
    }

    /// A refresh failed: retry with backoff if a retry can help, else wait for the user.
    /// Tells the user once per episode: at its first failure and when it gives up.
    pub fn failed(
        self,
        error: &RefreshError,
        retry: RetrySettings,
        now: SystemTime,
        jitter: f64,
    ) -> (Self, Option<Notice>) {
        let episode = self.episode();
        let tokens = self.tokens().cloned();
        if error.is_transient() {
            let attempt = match episode {
                Episode::Failing { attempt } => attempt + 1,
                Episode::Healthy | Episode::GaveUp => 1,
            };
            let delay = timing::backoff(attempt, retry, error.wait_hint(), jitter);
            let notice = (episode == Episode::Healthy).then_some(Notice::FirstFailure);
            let next_try = Deadline::after(now, delay);
            let state = Self::Retrying {
                tokens,
                attempt,
                next_try,
                error: error.into(),
            };
            (state, notice)
        } else {
            let notice = match episode {
                Episode::Healthy => Some(Notice::GaveUp { first: true }),
                Episode::Failing { .. } => Some(Notice::GaveUp { first: false }),
                Episode::GaveUp => None,
            };
            let error = error.into();
            (Self::NeedsReconnect { tokens, error }, notice)
        }
    }

    /// The user fixed something (a new client secret): try again now. A waiting failure
    /// stays in its episode, so a success is announced as a recovery.
    pub fn retry_now(self, now: SystemTime) -> Self {
        match self {
            Self::NeedsReconnect { tokens, error } | Self::Retrying { tokens, error, .. } => {
                Self::Retrying {
                    tokens,
                    attempt: 0,
                    next_try: Deadline::at(now),
                    error,
                }
            }
            other => other,
        }
    }

    /// Not read from the keychain yet: the engine reads it at once, a few accounts at a time,
    /// so that a thousand accounts do not keep the engine (and its API) from starting.
    pub fn unread(now: SystemTime) -> Self {
        Self::Unread {
            attempt: 0,
            next_try: Deadline::at(now),
            reason: "reading the keychain".to_owned(),
        }
    }

    /// The keychain could not be read: try again later, doubling the wait.
    pub fn unreadable(self, reason: String, now: SystemTime, jitter: f64) -> Self {
        let attempt = match self {
            Self::Unread { attempt, .. } => attempt + 1,
            _ => 1,
        };
        let retry = RetrySettings {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let delay = timing::backoff(attempt, retry, None, jitter);
        Self::Unread {
            attempt,
            next_try: Deadline::after(now, delay),
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
