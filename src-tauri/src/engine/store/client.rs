//! The async face of whichever store the engine opened: calls run on the blocking pool a few
//! at a time (a thousand accounts at once make the Secret Service time out), token sets are
//! typed, every write is counted, and the token journal hears of each write. In a fleet, a
//! token set's read is judged and its write carries its fence (see [`Sharing`]).

use std::sync::Arc;
use std::time::Duration;

use super::item::{Backing, Fence, SecretKey, SecretStore, StoreError};
use super::sharing::{Judged, Sharing};
use crate::engine::names::AccountName;
use crate::engine::secret::{Secret, TokenSet};

/// Keychain calls in flight at once. gnome-keyring serves D-Bus calls one by one; more
/// than a few at a time only queue there until they time out.
const CONCURRENT_CALLS: usize = 4;
/// Writes of a set tried at once (a keychain that restarts mid-call, a Redis connection an
/// outage broke: each fails once and works the next time).
const QUICK_TRIES: u32 = 3;

/// Async face of a [`SecretStore`], with typed helpers for token sets.
#[derive(Clone)]
pub struct Keychain {
    store: Arc<dyn SecretStore>,
    /// Calls in flight, the journal and the fleet: one pointer, as clients hold many of these.
    shared: Arc<Calls>,
    /// Every write that reached the store (`tokenwarden_secret_writes_total`).
    writes: prometheus_client::metrics::counter::Counter,
}

struct Calls {
    permits: tokio::sync::Semaphore,
    /// Told when a token set is written or deleted, so that it drops the set's entry.
    journal: crate::engine::store::journal::Settling,
    sharing: Sharing,
}

impl Keychain {
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        Self {
            store,
            shared: Arc::new(Calls {
                permits: tokio::sync::Semaphore::new(CONCURRENT_CALLS),
                journal: Arc::new(tokio::sync::SetOnce::new_with(Some(None))),
                sharing: Sharing::Alone,
            }),
            writes: Default::default(),
        }
    }

    /// Reads and writes token sets as a host of `sharing`'s fleet, if any. A builder step,
    /// like [`Self::journaled`].
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.shared = Arc::new(Calls {
            permits: tokio::sync::Semaphore::new(CONCURRENT_CALLS),
            journal: self.shared.journal.clone(),
            sharing,
        });
        self
    }

    /// Tells `journal` about every token set written or deleted through this keychain. A
    /// builder step: clones made before it share neither the journal nor the call limit.
    pub fn journaled(mut self, journal: crate::engine::store::journal::Settling) -> Self {
        self.shared = Arc::new(Calls {
            permits: tokio::sync::Semaphore::new(CONCURRENT_CALLS),
            journal,
            sharing: self.shared.sharing.clone(),
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

    /// Whether the store is a fleet's: a set that replaces one this host served is then
    /// another host's refresh.
    pub fn is_shared(&self) -> bool {
        self.shared.sharing.is_shared()
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
            too_large: false,
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

    /// Reads `key` and judges what it found (see [`Sharing`]).
    pub(super) async fn read(&self, key: &SecretKey) -> Result<Judged, StoreError> {
        let k = key.clone();
        let found = self.call(key, move |store| store.read(&k)).await?;
        Ok(self.shared.sharing.judge(key, found))
    }

    /// What the store holds under `key`: nothing where a shared store lost it or holds an
    /// older set than this host (see [`Self::tokens_keeping`] to store this host's again).
    pub async fn get(&self, key: SecretKey) -> Result<Option<Secret>, StoreError> {
        Ok(match self.read(&key).await? {
            Judged::Value(value) => value,
            Judged::Behind => None,
        })
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

    /// Writes `value` (`None`: deletes it) with the fence it carries in a fleet, and runs
    /// `then` on the blocking pool once it is in.
    pub(super) async fn write(
        &self,
        key: SecretKey,
        value: Option<Secret>,
        then: impl FnOnce(&SecretKey) + Send + 'static,
    ) -> Result<(), StoreError> {
        let (fence, lease): (Fence, _) = self.shared.sharing.fence_for(&key).await?;
        let k = key.clone();
        let written = self
            .call(&key, move |store| {
                let written = store.write(&k, value.as_ref(), fence)?;
                then(&k);
                Ok(written)
            })
            .await;
        self.shared.sharing.wrote(&key, fence, &written);
        if let Some(lease) = lease {
            lease.release().await;
        }
        written.map(drop)
    }

    pub async fn delete(&self, key: SecretKey) -> Result<(), StoreError> {
        // A set deleted before the journal has opened would come back from it at replay.
        let journal = match key {
            SecretKey::Tokens(_) => self.shared.journal.wait().await.clone(),
            _ => None,
        };
        // Whoever refreshed last, a disconnect wins: it takes a fence of its own.
        self.shared.sharing.forget(&key);
        self.write(key, None, move |key| {
            // A deleted set (disconnect) must not come back from the journal.
            if let (SecretKey::Tokens(name), Some(journal)) = (key, journal) {
                journal.forget(name);
            }
        })
        .await
    }

    pub async fn tokens(&self, name: &AccountName) -> Result<Option<TokenSet>, StoreError> {
        let key = SecretKey::Tokens(name.clone());
        let json = self.get(key.clone()).await?;
        self.parse(&key, json)
    }

    /// A stored token set's JSON, typed.
    pub(super) fn parse(
        &self,
        key: &SecretKey,
        json: Option<Secret>,
    ) -> Result<Option<TokenSet>, StoreError> {
        let Some(json) = json else {
            return Ok(None);
        };
        TokenSet::from_stored_json(&json)
            .map(Some)
            .ok_or_else(|| StoreError {
                backing: self.store.backing(key),
                entry: key.entry(),
                message:
                    "holds something that is not a Tokenwarden token set; connect the account again"
                        .into(),
                too_large: false,
            })
    }

    /// The next write of `name`'s set replaces whatever is stored, newer or not (a new
    /// consent): in a fleet it takes a lease of its own, whichever set this host held.
    pub fn replace_next(&self, name: &AccountName) {
        self.shared.sharing.forget(&SecretKey::Tokens(name.clone()));
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
        let journal = self.shared.journal.get().cloned().flatten();
        let written = self
            .write(key, Some(value), move |key| {
                if let (SecretKey::Tokens(name), Some(journal)) = (key, journal) {
                    journal.saved(name, seq);
                }
            })
            .await;
        if written.is_ok() {
            self.writes.inc();
        }
        written
    }

    /// [`Self::store_tokens_at`], tried a few times at once before the failure is the
    /// caller's to handle.
    pub async fn store_tokens_retrying(
        &self,
        name: &AccountName,
        set: &TokenSet,
        seq: u64,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.store_tokens_at(name, set, seq).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= QUICK_TRIES => return Err(e),
                Err(e) => {
                    tracing::warn!(account = %name, error = %e, attempt, "{} write failed, retrying", e.backing.name());
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }
}
