//! Keychain writes of token sets. A rotated refresh token that is only in memory is one
//! crash from lost, so a new set is written before anything else sees it; a write that
//! fails is tried a few times at once, then again under the account's gate with backoff
//! (the scheduler), and once more when the engine closes. A newer set supersedes an older
//! unsaved one: the generation says which is current.
//! This is the seam for "where a token set lives": a shared store can take its place later.

use std::time::{Duration, Instant};

use super::config::RetrySettings;
use super::events::EngineEvent;
use super::history::{Outcome, Record, Trigger};
use super::names::{AccountName, Deadline};
use super::secret::TokenSet;
use super::secrets::KeychainError;
use super::{timing, Engine, EngineError};

/// Writes tried at once before the set is kept in memory and the write left to the scheduler.
const QUICK_TRIES: u32 = 3;
/// Backoff of the scheduler's write retries.
const SAVE_RETRY: RetrySettings = RetrySettings {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
};

impl Engine {
    /// Writes a token set, trying a few times.
    pub(super) async fn save_tokens(
        &self,
        name: &AccountName,
        set: &TokenSet,
    ) -> Result<(), KeychainError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.shared.keychain.store_tokens(name, set).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= QUICK_TRIES => return Err(e),
                Err(e) => {
                    tracing::warn!(account = %name, error = %e, attempt, "keychain write failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    /// The scheduler's retry of an unsaved set: under the gate, so no refresh or connect
    /// writes between our read of the set and our write of it.
    pub(super) async fn retry_save(&self, name: &AccountName) {
        let Ok(gate) = self.with_slot(name, |s| s.gate.clone()) else {
            return;
        };
        let _turn = gate.lock().await;
        let pending = self
            .with_slot(name, |s| {
                s.unsaved
                    .clone()
                    .and_then(|u| Some((u, s.state.tokens()?.clone(), s.generation)))
            })
            .ok()
            .flatten();
        let Some((unsaved, set, generation)) = pending else {
            return;
        };
        let started = Instant::now();
        match self.shared.keychain.store_tokens(name, &set).await {
            Ok(()) => self.saved(name, generation, started),
            Err(e) => {
                let attempt = unsaved.attempt + 1;
                let delay = timing::backoff(attempt, SAVE_RETRY, None, rand::random());
                tracing::warn!(account = %name, error = %e, attempt, "keychain write failed again");
                self.with_slot(name, |s| {
                    if let Some(u) = &mut s.unsaved {
                        u.attempt = attempt;
                        u.next_try = Deadline::after(crate::engine::clock::now(), delay);
                    }
                })
                .ok();
            }
        }
    }

    fn saved(&self, name: &AccountName, generation: u64, started: Instant) {
        let current = self
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
        tracing::info!(account = %name, "the new token is now saved in the keychain");
        self.record(Record {
            account: name.clone(),
            trigger: Trigger::Save,
            outcome: Outcome::Ok,
            elapsed: started.elapsed(),
            expires_at: None,
            error: None,
        });
        self.emit(EngineEvent::Saved {
            account: name.clone(),
        });
    }

    /// At close: every set still only in memory gets a last few tries. Returns what could
    /// not be saved, so that a one-shot command exits with an error instead of silently
    /// losing a rotated refresh token.
    pub(super) async fn flush_unsaved(&self) -> Vec<EngineError> {
        let pending: Vec<AccountName> = {
            let accounts = self.shared.accounts.lock().expect("poisoned");
            accounts
                .iter()
                .filter(|(_, s)| s.unsaved.is_some())
                .map(|(n, _)| n.clone())
                .collect()
        };
        let mut failures = Vec::new();
        for name in pending {
            let Ok(gate) = self.with_slot(&name, |s| s.gate.clone()) else {
                continue;
            };
            let _turn = gate.lock().await;
            let Some((set, generation)) = self
                .with_slot(&name, |s| {
                    s.unsaved.as_ref()?;
                    Some((s.state.tokens()?.clone(), s.generation))
                })
                .ok()
                .flatten()
            else {
                continue;
            };
            let started = Instant::now();
            match self.save_tokens(&name, &set).await {
                Ok(()) => self.saved(&name, generation, started),
                Err(source) => {
                    tracing::error!(account = %name, error = %source, "the newest token set could not be saved before exit");
                    failures.push(EngineError::Unsaved {
                        account: name.clone(),
                        source,
                    });
                }
            }
        }
        failures
    }
}
