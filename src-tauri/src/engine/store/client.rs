//! The async face of whichever store the engine opened: calls run on the blocking pool a few
//! at a time (a thousand accounts at once make the Secret Service time out), token sets are
//! typed, every write is counted, and the token journal hears of each write.

use std::sync::Arc;

use super::item::{Backing, SecretKey, SecretStore, StoreError};
use crate::engine::names::AccountName;
use crate::engine::secret::{Secret, TokenSet};

/// Keychain calls in flight at once. gnome-keyring serves D-Bus calls one by one; more
/// than a few at a time only queue there until they time out.
const CONCURRENT_CALLS: usize = 4;

/// Async face of a [`SecretStore`], with typed helpers for token sets.
#[derive(Clone)]
pub struct Keychain {
    store: Arc<dyn SecretStore>,
    /// Calls in flight, and the journal: one pointer, as clients hold many of these.
    shared: Arc<Calls>,
    /// Every write that reached the store (`tokenwarden_secret_writes_total`).
    writes: prometheus_client::metrics::counter::Counter,
}

struct Calls {
    permits: tokio::sync::Semaphore,
    /// Told when a token set is written or deleted, so that it drops the set's entry.
    journal: crate::engine::store::journal::Settling,
}

impl Keychain {
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        Self {
            store,
            shared: Arc::new(Calls {
                permits: tokio::sync::Semaphore::new(CONCURRENT_CALLS),
                journal: Arc::new(tokio::sync::SetOnce::new_with(Some(None))),
            }),
            writes: Default::default(),
        }
    }

    /// Tells `journal` about every token set written or deleted through this keychain. A
    /// builder step: clones made before it share neither the journal nor the call limit.
    pub fn journaled(mut self, journal: crate::engine::store::journal::Settling) -> Self {
        self.shared = Arc::new(Calls {
            permits: tokio::sync::Semaphore::new(CONCURRENT_CALLS),
            journal,
        });
        self
    }

    /// Counts this keychain's writes in `writes` (a metric's counter).
    pub fn counting(mut self, writes: prometheus_client::metrics::counter::Counter) -> Self {
        self.writes = writes;
        self
    }

    /// Where the store keeps `key`, for errors about it that no store call made.
    pub fn backing(&self, key: &SecretKey) -> Backing {
        self.store.backing(key)
    }

    /// Runs `f` on the blocking pool once a permit is free; `key` names the item in errors
    /// of the call itself.
    async fn call<T: Send + 'static>(
        &self,
        key: &SecretKey,
        f: impl FnOnce(&dyn SecretStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (backing, entry) = (self.store.backing(key), key.entry());
        let fail = |message: String| StoreError {
            backing: backing.clone(),
            entry: entry.clone(),
            message,
        };
        let _permit = self
            .shared
            .permits
            .acquire()
            .await
            .map_err(|_| fail("the store's client is shut down".into()))?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .unwrap_or_else(|e| Err(fail(format!("store task failed: {e}"))))
    }

    pub async fn get(&self, key: SecretKey) -> Result<Option<Secret>, StoreError> {
        self.call(&key.clone(), move |store| store.get(&key)).await
    }

    pub async fn set(&self, key: SecretKey, value: Secret) -> Result<(), StoreError> {
        let written = self
            .call(&key.clone(), move |store| store.set(&key, &value))
            .await;
        if written.is_ok() {
            self.writes.inc();
        }
        written
    }

    pub async fn delete(&self, key: SecretKey) -> Result<(), StoreError> {
        // A set deleted before the journal has opened would come back from it at replay.
        let journal = match key {
            SecretKey::Tokens(_) => self.shared.journal.wait().await.clone(),
            _ => None,
        };
        self.call(&key.clone(), move |store| {
            store.delete(&key)?;
            // A deleted set (disconnect) must not come back from the journal.
            if let (SecretKey::Tokens(name), Some(journal)) = (&key, journal) {
                journal.forget(name);
            }
            Ok(())
        })
        .await
    }

    pub async fn tokens(&self, name: &AccountName) -> Result<Option<TokenSet>, StoreError> {
        let key = SecretKey::Tokens(name.clone());
        let Some(json) = self.get(key.clone()).await? else {
            return Ok(None);
        };
        TokenSet::from_stored_json(&json)
            .map(Some)
            .ok_or_else(|| StoreError {
                backing: self.store.backing(&key),
                entry: key.entry(),
                message:
                    "holds something that is not a Tokenwarden token set; connect the account again"
                        .into(),
            })
    }

    /// Writes a set under a new sequence number.
    pub async fn store_tokens(&self, name: &AccountName, set: &TokenSet) -> Result<(), StoreError> {
        self.store_tokens_at(name, set, crate::engine::store::journal::seq::next())
            .await
    }

    /// Writes a set under sequence number `seq` (its journal entry's); once it is in,
    /// the journal drops the entry.
    pub async fn store_tokens_at(
        &self,
        name: &AccountName,
        set: &TokenSet,
        seq: u64,
    ) -> Result<(), StoreError> {
        let (key, value) = (SecretKey::Tokens(name.clone()), set.to_stored_json_at(seq));
        let (journal, name) = (self.shared.journal.get().cloned().flatten(), name.clone());
        let written = self
            .call(&key.clone(), move |store| {
                store.set(&key, &value)?;
                if let Some(journal) = journal {
                    journal.saved(&name, seq);
                }
                Ok(())
            })
            .await;
        if written.is_ok() {
            self.writes.inc();
        }
        written
    }
}
