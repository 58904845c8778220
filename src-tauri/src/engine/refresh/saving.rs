//! Writes of token sets. A rotated refresh token that is only in memory is one crash from
//! lost, so a provider's answer goes to the token journal first (sealed, fsync'd: a few
//! milliseconds), then to the keychain, before anything else sees it. A keychain write
//! that fails is tried a few times at once, then again under the account's gate with
//! backoff (the scheduler), and once more when the engine closes, within [`FLUSH_BOUND`]:
//! what is still unsaved then stays in the journal for the next start. A newer set
//! supersedes an older unsaved one: the generation says which is current.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use crate::engine::account::slot::Unsaved;
use crate::engine::account::timing;
use crate::engine::config::RetrySettings;
use crate::engine::events::EngineEvent;
use crate::engine::history::{Outcome, Record, Trigger};
use crate::engine::names::{AccountName, Deadline};
use crate::engine::secret::TokenSet;
use crate::engine::store::item::{SecretKey, StoreError};
use crate::engine::store::journal::replay;
use crate::engine::store::journal::seq;
use crate::engine::{Engine, EngineError};

/// Backoff of the scheduler's write retries.
const SAVE_RETRY: RetrySettings = RetrySettings {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
};
/// How long the last writes at close may take. A keychain that is gone or locked must not
/// hold an exit hostage (systemd kills a stop that hangs); the journal keeps what is left.
pub(crate) const FLUSH_BOUND: Duration = Duration::from_secs(10);
/// Writes at close in flight at once: the keychain client's own bound.
const FLUSH_AT_ONCE: usize = 4;

/// Where a provider's answer went.
pub(crate) struct Kept {
    pub seq: u64,
    /// In the token journal: durable, whatever the keychain said.
    pub journaled: bool,
    pub saved: Result<(), StoreError>,
}

impl Kept {
    pub fn durable(&self) -> bool {
        self.journaled || self.saved.is_ok()
    }
}

/// What a write of an unsaved set did.
enum Written {
    Saved,
    /// The keychain held a newer set than the journal's, which was dropped.
    StoredWasNewer,
}

/// A provider's answer (`received`: when it arrived): the journal first, then the keychain.
pub(crate) async fn keep_answer(
    engine: &Engine,
    name: &AccountName,
    set: &TokenSet,
    received: Instant,
) -> Kept {
    let seq = seq::next();
    let journaled = journal_write(engine, name, set, seq).await;
    if journaled {
        engine.durable(name, received, "journal");
    }
    let saved = save_tokens_at(engine, name, set, seq).await;
    if saved.is_ok() && !journaled {
        engine.durable(name, received, "keychain");
    }
    Kept {
        seq,
        journaled,
        saved,
    }
}

async fn journal_write(engine: &Engine, name: &AccountName, set: &TokenSet, seq: u64) -> bool {
    let Some(journal) = engine
        .shared
        .journal
        .get()
        .cloned()
        .flatten()
        .filter(|j| j.writes())
    else {
        return false;
    };
    let (account, stored) = (name.clone(), set.to_stored_json_at(seq));
    let written = tokio::task::spawn_blocking(move || journal.write(&account, seq, &stored)).await;
    let error = match written {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("journal task: {e}"),
    };
    tracing::warn!(account = %name, error, "cannot write the token journal; until the keychain write returns, this process holds the only copy");
    false
}

/// Writes a consent's new set, trying a few times. It replaces whatever is stored,
/// newer or not.
pub(crate) async fn save_grant(
    engine: &Engine,
    name: &AccountName,
    set: &TokenSet,
) -> Result<(), StoreError> {
    engine.shared.keychain.replace_next(name);
    save_tokens_at(engine, name, set, seq::next()).await
}

/// Writes a set, trying a few times before it is kept in memory and the write left to
/// the scheduler.
async fn save_tokens_at(
    engine: &Engine,
    name: &AccountName,
    set: &TokenSet,
    seq: u64,
) -> Result<(), StoreError> {
    let keychain = &engine.shared.keychain;
    keychain.store_tokens_retrying(name, set, seq).await
}

/// Writes an unsaved set once (a replayed one only if the keychain's is older).
async fn write_unsaved(
    engine: &Engine,
    name: &AccountName,
    set: &TokenSet,
    unsaved: &Unsaved,
) -> Result<Written, StoreError> {
    if unsaved.check_stored && replay::stored_is_newer(engine, name, unsaved.seq).await? {
        return Ok(Written::StoredWasNewer);
    }
    let keychain = &engine.shared.keychain;
    keychain.store_tokens_at(name, set, unsaved.seq).await?;
    Ok(Written::Saved)
}

/// The scheduler's retry of an unsaved set: under the gate, so no refresh or connect
/// writes between our read of the set and our write of it. A stop leaves it to the
/// bounded flush at close.
pub(crate) async fn retry_save(engine: &Engine, name: &AccountName) {
    let Ok(gate) = engine.with_slot(name, |s| s.gate.clone()) else {
        return;
    };
    let _turn = gate.lock().await;
    let Some((unsaved, set, generation)) = pending(engine, name) else {
        return;
    };
    let started = Instant::now();
    let written = tokio::select! {
        w = write_unsaved(engine, name, &set, &unsaved) => w,
        () = engine.shared.stop.cancelled() => return,
    };
    match written {
        Ok(Written::Saved) => saved(engine, name, generation, started),
        Ok(Written::StoredWasNewer) => {}
        Err(e) => {
            let attempt = unsaved.attempt + 1;
            let delay = timing::backoff(attempt, SAVE_RETRY, None, rand::random());
            tracing::warn!(account = %name, error = %e, attempt, "{} write failed again", e.backing.name());
            engine
                .with_slot(name, |s| {
                    if let Some(u) = &mut s.unsaved {
                        u.attempt = attempt;
                        u.next_try = Deadline::after(crate::engine::clock::now(), delay);
                    }
                })
                .ok();
        }
    }
}

/// The account's unsaved set, if it has one.
fn pending(engine: &Engine, name: &AccountName) -> Option<(Unsaved, TokenSet, u64)> {
    engine
        .with_slot(name, |s| {
            s.unsaved
                .clone()
                .and_then(|u| Some((u, s.state.tokens()?.clone(), s.generation)))
        })
        .ok()
        .flatten()
}

fn saved(engine: &Engine, name: &AccountName, generation: u64, started: Instant) {
    let current = engine
        .update(name, |s| {
            let current = s.generation == generation;
            if current {
                s.unsaved = None;
            }
            current
        })
        .unwrap_or(false);
    if !current {
        return;
    }
    let store = engine
        .shared
        .keychain
        .backing(&SecretKey::Tokens(name.clone()));
    tracing::info!(account = %name, "the new token is now saved in the {}", store.name());
    engine.record(Record {
        account: name.clone(),
        trigger: Trigger::Save,
        outcome: Outcome::Ok,
        elapsed: started.elapsed(),
        expires_at: None,
        error: None,
    });
    engine.emit(EngineEvent::Saved {
        account: name.clone(),
    });
}

/// At close: every set not in the keychain yet gets a last write (one try if the
/// journal holds it, a few if this process is its only holder), a few at a time, for
/// [`FLUSH_BOUND`] at most. Returns what is still unsaved, so that the caller can name it
/// and a one-shot command can fail instead of silently losing a rotated refresh token.
pub(crate) async fn flush_unsaved(engine: &Engine) -> Vec<EngineError> {
    let pending: Vec<AccountName> = {
        let accounts = engine.shared.accounts.lock().expect("poisoned");
        accounts
            .iter()
            .filter(|(_, s)| s.unsaved.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    };
    if pending.is_empty() {
        return Vec::new();
    }
    let mut failures = Vec::new();
    let mut done = HashSet::new();
    let mut flushes = futures_util::stream::iter(pending.iter().cloned())
        .map(|name| async move {
            let failure = flush_one(engine, &name).await;
            (name, failure)
        })
        .buffer_unordered(FLUSH_AT_ONCE);
    let bound = tokio::time::timeout(FLUSH_BOUND, async {
        while let Some((name, failure)) = flushes.next().await {
            failures.extend(failure);
            done.insert(name);
        }
    })
    .await;
    drop(flushes);
    if bound.is_err() {
        for name in pending.iter().filter(|n| !done.contains(*n)) {
            let journaled = engine
                .with_slot(name, |s| s.unsaved.as_ref().map(|u| u.journaled))
                .ok()
                .flatten();
            if let Some(journaled) = journaled {
                failures.push(EngineError::Unsaved {
                    account: name.clone(),
                    source: StoreError {
                        backing: engine
                            .shared
                            .keychain
                            .backing(&SecretKey::Tokens(name.clone())),
                        entry: SecretKey::Tokens(name.clone()).entry(),
                        message: format!(
                            "not written: the last writes at exit stop after {} s",
                            FLUSH_BOUND.as_secs()
                        ),
                        too_large: false,
                    },
                    journaled,
                });
            }
        }
    }
    if !failures.is_empty() {
        let journaled = failures
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    EngineError::Unsaved {
                        journaled: true,
                        ..
                    }
                )
            })
            .count();
        tracing::error!(
            unsaved = failures.len(),
            journaled,
            "token sets could not be saved in the {} before exit; those in the token journal are written at the next start",
            failures.iter().find_map(EngineError::store_name).unwrap_or("store")
        );
    }
    failures
}

async fn flush_one(engine: &Engine, name: &AccountName) -> Option<EngineError> {
    let gate = engine.with_slot(name, |s| s.gate.clone()).ok()?;
    let _turn = gate.lock().await;
    let (unsaved, set, generation) = pending(engine, name)?;
    let started = Instant::now();
    let written = if unsaved.journaled {
        write_unsaved(engine, name, &set, &unsaved).await
    } else {
        save_tokens_at(engine, name, &set, unsaved.seq)
            .await
            .map(|()| Written::Saved)
    };
    match written {
        Ok(Written::Saved) => saved(engine, name, generation, started),
        Ok(Written::StoredWasNewer) => {}
        Err(source) => {
            tracing::debug!(account = %name, error = %source, "the newest token set could not be saved before exit");
            return Some(EngineError::Unsaved {
                account: name.clone(),
                source,
                journaled: unsaved.journaled,
            });
        }
    }
    None
}
