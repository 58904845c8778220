//! Tokens handed out. Every token served goes through [`Engine::valid_token`], so "never after
//! `expires_at`" and `min_valid` hold for every front end. Reports of a 401 refresh at most
//! once per token, share refreshes in flight, respect backoff and `needs_reconnect`, and stop
//! refreshing after a few reports of tokens that were just refreshed (the loop guard): more
//! refreshes will not fix an API that refuses a fresh token.

use std::time::Duration;

use crate::engine::account::state::{AccountState, Status};
use crate::engine::account::views::TokenView;
use crate::engine::error::{ErrorKind, Remedy};
use crate::engine::history::Trigger;
use crate::engine::names::AccountName;
use crate::engine::refresh::attempt;
use crate::engine::refresh::attempt::Skip;
use crate::engine::secret::Secret;
use crate::engine::{Engine, EngineError, Mode};

/// A refresh whose new set could not be written to the keychain still answers: the set is
/// valid, kept in memory and written when the keychain works again, and the failure is
/// reported once (event, history, the account's `unsaved`). A one-shot CLI engine fails at
/// exit if the set is still unsaved then (`cli::commands::finish`).
fn kept_in_memory(result: Result<(), EngineError>) -> Result<(), EngineError> {
    match result {
        Err(EngineError::Unsaved { .. }) => Ok(()),
        other => other,
    }
}

impl Engine {
    /// The current token if it stays valid for `min_valid`: the only way tokens are served.
    pub(crate) fn valid_token(
        &self,
        name: &AccountName,
        min_valid: Duration,
    ) -> Result<Option<TokenView>, EngineError> {
        self.with_slot(name, |slot| {
            let now = crate::engine::clock::now();
            slot.state.servable(now, min_valid).map(|t| TokenView {
                access_token: t.access.clone(),
                token_type: t.token_type.clone(),
                expires_at: t.expires_at,
                expires_in: t.expires_at.remaining(now).as_secs(),
                scope: t.scope.clone(),
            })
        })
    }

    /// The token if it is valid for `min_valid` now, without refreshing or waiting: the
    /// API's fast path. `None` for anything else; [`Self::token`] then decides.
    pub fn token_at_hand(&self, name: &AccountName, min_valid: Duration) -> Option<TokenView> {
        self.valid_token(name, min_valid).ok().flatten()
    }

    /// A token valid for at least `min_valid`, refreshed first if needed (and allowed).
    pub async fn token(
        &self,
        name: &AccountName,
        min_valid: Duration,
    ) -> Result<TokenView, EngineError> {
        if let Some(view) = self.valid_token(name, min_valid)? {
            return Ok(view);
        }
        if self.with_slot(name, |s| s.short_lived == Some(s.generation))? {
            // This token was fetched for such a request and still fell short: refreshing
            // again would only give another token of the same lifetime.
            self.check_lifetime(name, min_valid)?;
        }
        if self.mode() == Mode::Observer {
            // The running engine may have refreshed since we loaded: the keychain is the truth.
            let stored = self.shared.keychain.tokens(name).await?;
            self.with_slot(name, |s| {
                if let Some(tokens) = stored {
                    s.state = AccountState::fresh(tokens, s.account.schedule, name);
                }
            })?;
            return self
                .valid_token(name, min_valid)?
                .ok_or_else(|| self.not_valid(name, min_valid));
        }
        kept_in_memory(
            attempt::refresh_owned(self, name, Trigger::MinValid, Skip::IfValidFor(min_valid))
                .await,
        )?;
        if let Err(e) = self.check_lifetime(name, min_valid) {
            self.with_slot(name, |s| s.short_lived = Some(s.generation))?;
            return Err(e);
        }
        self.valid_token(name, min_valid)?
            .ok_or_else(|| self.not_valid(name, min_valid))
    }

    /// Refreshes now, whatever the token's age.
    pub async fn refresh(&self, name: &AccountName) -> Result<TokenView, EngineError> {
        kept_in_memory(attempt::refresh_owned(self, name, Trigger::Manual, Skip::Never).await)?;
        self.valid_token(name, Duration::ZERO)?
            .ok_or_else(|| self.not_valid(name, Duration::ZERO))
    }

    /// Refreshes every account now, all at once (the per-host bound still spaces them out),
    /// as "Refresh all" asks. A failure is the engine's news like any refresh's: recorded,
    /// shown and notified by the refresh itself, so nothing is returned but the wait.
    pub async fn refresh_all(&self) {
        let names: Vec<AccountName> = self
            .config()
            .accounts
            .iter()
            .map(|a| a.name.clone())
            .collect();
        let refreshes = names.iter().map(|name| async move {
            if let Err(e) = self.refresh(name).await {
                tracing::debug!(account = %name, error = %e, "refresh all: this one failed");
            }
        });
        futures_util::future::join_all(refreshes).await;
    }

    /// A client says an upstream API answered 401 to `reported`. If that is still the
    /// current token, refresh once; reports arriving meanwhile share that refresh. An older
    /// token, or one refreshed in the last few seconds, just gets the current one.
    pub async fn rejected(
        &self,
        name: &AccountName,
        reported: &str,
    ) -> Result<TokenView, EngineError> {
        crate::engine::account::reading::read_if_unread(self, name).await?;
        let (status, is_current) = self.with_slot(name, |s| {
            (
                s.status(crate::engine::clock::now()),
                s.holds_current(reported),
            )
        })?;
        if status == Status::NeedsReconnect {
            // Whatever the client holds, the grant behind it is refused: say so.
            return Err(self.not_valid(name, Duration::ZERO));
        }
        if is_current {
            let skip = Skip::UnlessCurrent(Secret::new(reported.to_owned()));
            attempt::refresh_owned(self, name, Trigger::Rejected, skip).await?;
        }
        self.valid_token(name, Duration::ZERO)?
            .ok_or_else(|| self.not_valid(name, Duration::ZERO))
    }

    /// `min_valid` longer than the token's whole lifetime can never be met by refreshing. It
    /// is found out with one refresh (the provider may have changed the lifetime), after
    /// which such requests fail at once until the token changes.
    fn check_lifetime(&self, name: &AccountName, min_valid: Duration) -> Result<(), EngineError> {
        let lifetime = self.with_slot(name, |s| {
            s.state
                .tokens()
                .map(|t| t.expires_at.remaining(t.obtained_at.time()))
        })?;
        match lifetime {
            Some(lifetime) if min_valid > lifetime => Err(EngineError::usage(
                name,
                format!(
                    "min_valid {}s is longer than the token's whole lifetime ({}s); ask for less",
                    min_valid.as_secs(),
                    lifetime.as_secs()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Why no token is valid, as an error the front ends can act on.
    pub(crate) fn not_valid(&self, name: &AccountName, min_valid: Duration) -> EngineError {
        let view = match self.view(name) {
            Ok(view) => view,
            Err(e) => return e,
        };
        let (kind, why) = match view.status {
            Status::NotConnected => (ErrorKind::NotConnected, "not connected yet".to_owned()),
            Status::NeedsReconnect => (
                ErrorKind::NeedsReconnect,
                format!(
                    "no valid token: {}",
                    view.last_error
                        .as_deref()
                        .unwrap_or("the provider refused the grant")
                ),
            ),
            _ => {
                let why = match (&view.last_error, self.mode()) {
                    (Some(error), _) => {
                        format!("no token valid for {}s: {error}", min_valid.as_secs())
                    }
                    (None, Mode::Observer) => format!(
                        "no token valid for {}s yet; the running engine refreshes it",
                        min_valid.as_secs()
                    ),
                    (None, Mode::Refresher) => {
                        format!("no token valid for {}s", min_valid.as_secs())
                    }
                };
                (ErrorKind::ProviderUnavailable, why)
            }
        };
        let remedy = view.remedy.or(match view.status {
            Status::NotConnected | Status::NeedsReconnect => Some(Remedy::Reconnect),
            _ => None,
        });
        EngineError::NoValidToken {
            account: name.clone(),
            kind,
            message: why,
            remedy,
        }
    }
}
