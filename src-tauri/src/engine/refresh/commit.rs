//! How a refresh attempt's outcome becomes the account's state: a new set is written to the
//! journal and the keychain before anything else sees it, and installed only if the account
//! is still in the generation the attempt started from; a failure moves the state machine
//! and is told once per episode. Every state change goes through `Engine::update`, which
//! tells subscribers and saves the state for other processes.

use std::time::{Duration, Instant};

use crate::engine::account::slot::Unsaved;
use crate::engine::account::state::{AccountState, Notice};
use crate::engine::config::Account;
use crate::engine::events::EngineEvent;
use crate::engine::history::{Outcome, Record, Trigger};
use crate::engine::names::Deadline;
use crate::engine::provider::RefreshError;
use crate::engine::refresh::saving;
use crate::engine::secret::TokenSet;
use crate::engine::{Engine, EngineError};

/// A new token set: journal and keychain first, then state, history and events, if the
/// account is still in the generation the refresh started from. `started`: when the
/// refresh began; `received`: when the provider's answer arrived.
pub(crate) async fn commit(
    engine: &Engine,
    account: &Account,
    set: TokenSet,
    generation: u64,
    trigger: Trigger,
    (started, received): (Instant, Instant),
) -> Result<(), EngineError> {
    let name = &account.name;
    let kept = saving::keep_answer(engine, name, &set, received).await;
    if kept.durable() {
        // Nothing rotated is lost any more if this process dies now.
        engine.shared.inflight.end(name);
    }
    let saved = kept.saved;
    let expires_at = set.expires_at;
    let now = crate::engine::clock::now();
    let installed = engine.update(name, |s| {
        if s.generation != generation {
            return None;
        }
        let state = std::mem::replace(&mut s.state, AccountState::NotConnected);
        let (state, notice) = state.succeeded(set, account.schedule, name);
        s.state = state;
        s.generation += 1;
        s.mark_refreshed(now);
        // A keychain that was already failing is one episode, told once.
        let episode = s.unsaved.take();
        let already = episode.is_some();
        s.unsaved = saved.as_ref().err().map(|e| Unsaved {
            attempt: episode.as_ref().map_or(1, |u| u.attempt),
            next_try: episode.as_ref().map_or_else(
                || Deadline::after(now, Duration::from_secs(1)),
                |u| u.next_try,
            ),
            message: format!(
                "the new token is not saved in the {} yet: {e}",
                e.backing.name()
            ),
            seq: kept.seq,
            journaled: kept.journaled,
            check_stored: false,
        });
        Some((notice, already))
    })?;
    let Some((notice, already_unsaved)) = installed else {
        tracing::warn!(account = %name, "a newer token set arrived while this refresh ran; this one is dropped");
        return Ok(());
    };
    let error = saved.as_ref().err().map(|e| {
        (
            "keychain_write_failed".to_owned(),
            format!("refreshed, but the new token could not be saved: {e}"),
        )
    });
    engine.record(Record {
        account: name.clone(),
        trigger,
        outcome: if error.is_some() {
            Outcome::TransientError
        } else {
            Outcome::Ok
        },
        elapsed: started.elapsed(),
        expires_at: Some(expires_at),
        error,
    });
    tracing::info!(account = %name, trigger = trigger.as_str(), expires_at = %expires_at, "refreshed");
    engine.emit(EngineEvent::Refreshed {
        account: name.clone(),
        expires_at,
        trigger,
    });
    if notice == Some(Notice::Recovered) {
        engine.emit(EngineEvent::Recovered {
            account: name.clone(),
        });
    }
    match saved {
        Ok(()) => Ok(()),
        Err(source) => {
            if already_unsaved {
                tracing::warn!(account = %name, error = %source, "the {} still cannot be written; the newest token is kept in memory", source.backing.name());
            } else {
                tracing::error!(account = %name, error = %source, "{} write failed; the new token is kept in memory and the write retried", source.backing.name());
                engine.emit(EngineEvent::KeychainWriteFailed {
                    account: name.clone(),
                    message: source.to_string(),
                    store: source.backing.name(),
                });
            }
            Err(EngineError::Unsaved {
                account: name.clone(),
                source,
                journaled: kept.journaled,
            })
        }
    }
}

/// An answer that failed otherwise may still carry a new refresh token (the provider
/// rotated it and consumed the old one): store it with the current set before anything.
pub(crate) async fn keep_rotated(
    engine: &Engine,
    account: &Account,
    current: Option<&TokenSet>,
    error: &RefreshError,
    generation: u64,
) {
    let (
        RefreshError::BadAnswer {
            rotated: Some(rotated),
            ..
        },
        Some(current),
    ) = (error, current)
    else {
        return;
    };
    let mut set = current.clone();
    set.refresh = Some(rotated.clone());
    let kept = saving::keep_answer(engine, &account.name, &set, Instant::now()).await;
    engine
        .with_slot(&account.name, |s| {
            if s.generation != generation {
                return;
            }
            s.generation += 1;
            if let AccountState::Refreshing { tokens, .. } = &mut s.state {
                *tokens = Some(set);
            }
            s.unsaved = kept.saved.as_ref().err().map(|e| Unsaved {
                attempt: 1,
                next_try: Deadline::after(crate::engine::clock::now(), Duration::from_secs(1)),
                message: format!(
                    "a new refresh token is not saved in the {} yet: {e}",
                    e.backing.name()
                ),
                seq: kept.seq,
                journaled: kept.journaled,
                check_stored: false,
            });
        })
        .ok();
    tracing::warn!(account = %account.name, "kept the new refresh token from an answer that was otherwise unusable");
}

pub(crate) fn fail(
    engine: &Engine,
    account: &Account,
    error: RefreshError,
    trigger: Trigger,
    started: Instant,
) -> Result<(), EngineError> {
    let name = &account.name;
    let retry = engine.config().retry;
    let now = crate::engine::clock::now();
    let quiet = matches!(
        error,
        RefreshError::NotConnected { .. } | RefreshError::MissingSecret { .. }
    );
    let notice = engine.update(name, |s| {
        let state = std::mem::replace(&mut s.state, AccountState::NotConnected);
        if quiet && state.tokens().is_none() {
            // Never connected: nothing failed that the user does not already know.
            return None;
        }
        let (state, notice) = state.failed(&error, retry, now, rand::random());
        s.state = state;
        Some(notice)
    })?;
    let Some(notice) = notice else {
        // Not connected yet: the same answer as asking for a token of such an account.
        return Err(engine.not_valid(name, Duration::ZERO));
    };
    let (code, message) = (error.code(), error.to_string());
    tracing::warn!(account = %name, trigger = trigger.as_str(), code = %code, "{message}");
    engine.record(Record {
        account: name.clone(),
        trigger,
        outcome: if error.is_transient() {
            Outcome::TransientError
        } else {
            Outcome::PermanentError
        },
        elapsed: started.elapsed(),
        expires_at: None,
        error: Some((code.clone(), message.clone())),
    });
    if let Some(Notice::FirstFailure | Notice::GaveUp { .. }) = notice {
        engine.emit(EngineEvent::RefreshFailed {
            account: name.clone(),
            code,
            message,
            first: !matches!(notice, Some(Notice::GaveUp { first: false })),
            gave_up: matches!(notice, Some(Notice::GaveUp { .. })),
        });
    }
    Err(error.into())
}
