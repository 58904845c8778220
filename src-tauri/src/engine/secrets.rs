//! The OS keychain behind [`SecretStore`]: one item per account token set, one per client
//! secret, one per API key, all under one service name. Calls block (D-Bus round trips of
//! ~0.2 s), so the engine runs them on the blocking pool through [`Keychain`], a few at a
//! time: a thousand accounts at once make the Secret Service time out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::names::AccountName;
use super::secret::{Secret, TokenSet};

/// Which keychain item. The entry names are part of the contract: `secret-tool lookup
/// service tokenwarden username tokens:fitbit` reads the same item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretKey {
    Tokens(AccountName),
    ClientSecret(AccountName),
    ApiKey(String),
    /// The running engine's own key, which the CLI uses to reach it.
    EngineKey,
    /// The key of the sealed database store (`[store] kind = "database"`), and of a shared
    /// Redis store on a desktop (servers take it from the environment or a file).
    StoreKey,
    /// The password of a shared Redis store, unless `TOKENWARDEN_REDIS_PASSWORD` has it.
    RedisPassword,
    /// The key that seals the token journal (`engine::journal`).
    JournalKey,
}

impl SecretKey {
    pub fn entry(&self) -> String {
        match self {
            Self::Tokens(name) => format!("tokens:{name}"),
            Self::ClientSecret(name) => format!("client-secret:{name}"),
            Self::ApiKey(label) => format!("api-key:{label}"),
            Self::EngineKey => "engine:api-key".to_owned(),
            Self::StoreKey => "store:key".to_owned(),
            Self::RedisPassword => "store:redis-password".to_owned(),
            Self::JournalKey => "journal:key".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("keychain item `{entry}`: {message}")]
pub struct KeychainError {
    pub entry: String,
    /// keyring's own message: it names the platform failure, never the stored value.
    pub message: String,
}

/// A store of secret strings. The real one is the OS keychain; tests of pure logic use
/// [`MemoryStore`].
pub trait SecretStore: Send + Sync + 'static {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, KeychainError>;
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), KeychainError>;
    /// Deleting an absent item is not an error.
    fn delete(&self, key: &SecretKey) -> Result<(), KeychainError>;
}

pub struct OsKeychain {
    service: String,
}

impl OsKeychain {
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }

    fn entry(&self, key: &SecretKey) -> Result<keyring::Entry, KeychainError> {
        keyring::Entry::new(&self.service, &key.entry()).map_err(|e| fail(key, e))
    }
}

fn fail(key: &SecretKey, e: keyring::Error) -> KeychainError {
    let message = match e {
        keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => format!(
            "the keychain is not reachable ({e}); on Linux a Secret Service (gnome-keyring, KWallet) must run and be unlocked"
        ),
        other => other.to_string(),
    };
    KeychainError {
        entry: key.entry(),
        message,
    }
}

/// Whether a failed call died with the Secret Service mid-call (D-Bus `NoReply`): gnome-keyring
/// aborts on an upstream bug under bursts of clients (GNOME gitlab gnome-keyring #190, #196,
/// #199), and the bus (or the desktop's session manager) starts it again for the next caller.
fn service_died_mid_call(e: &keyring::Error) -> bool {
    matches!(e, keyring::Error::PlatformFailure(_))
        && e.to_string()
            .contains("disconnected from message bus without replying")
}

/// Runs a keychain call, and once more after a moment if the service died during it. Every
/// call here may be repeated: a set writes the same value, a delete of what is gone is done.
fn once_more_if_the_service_died<T>(
    call: impl Fn() -> Result<T, keyring::Error>,
) -> Result<T, keyring::Error> {
    match call() {
        Err(e) if service_died_mid_call(&e) => {
            tracing::warn!(error = %e, "the Secret Service went away during a call; asking again once");
            std::thread::sleep(std::time::Duration::from_millis(200));
            call()
        }
        other => other,
    }
}

impl SecretStore for OsKeychain {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, KeychainError> {
        let entry = self.entry(key)?;
        match once_more_if_the_service_died(|| entry.get_password()) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(fail(key, e)),
        }
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), KeychainError> {
        let entry = self.entry(key)?;
        once_more_if_the_service_died(|| entry.set_password(value.expose()))
            .map_err(|e| fail(key, e))
    }
    fn delete(&self, key: &SecretKey) -> Result<(), KeychainError> {
        let entry = self.entry(key)?;
        match once_more_if_the_service_died(|| entry.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(fail(key, e)),
        }
    }
}

/// Where this machine keeps secrets for `kind`: the OS keychain, or the sealed database in
/// the data dir with its key (and API keys) in the keychain.
pub fn store_for(
    kind: super::config::StoreKind,
    service: &str,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn SecretStore>, super::sealed::OpenError> {
    let keychain = os_store(service);
    Ok(match kind {
        super::config::StoreKind::Keychain => keychain,
        super::config::StoreKind::Database => {
            let sealed =
                super::sealed::SealedStore::open(&sealed_path(data_dir), keychain.clone())?;
            Arc::new(super::sealed::Routed {
                sealed: Arc::new(sealed),
                keychain,
            })
        }
        // The engine opens a shared store itself (it needs the fleet, not only a store).
        super::config::StoreKind::Redis => return Err(super::sealed::OpenError::NotMovable),
    })
}

/// Past this many accounts the keychain store makes a first start slow: each token set is an
/// item of its own, and gnome-keyring rewrites its whole file on every change (about three
/// writes a second under load, so 10,000 accounts took most of an hour).
pub const MANY_FOR_KEYCHAIN: usize = 300;

/// What to say, once at start, to someone whose many accounts live in the keychain store.
pub fn store_advice(kind: super::config::StoreKind, accounts: usize) -> Option<String> {
    (kind == super::config::StoreKind::Keychain && accounts > MANY_FOR_KEYCHAIN).then(|| {
        format!(
            "{accounts} accounts on the keychain store: each token set is a keychain item of its own, and a keychain manages a few writes a second (a first start of {accounts} accounts takes about {} min); set [store] kind = \"database\" in the config and run `tokenwarden store migrate --to database` to keep them sealed in one local file whose key is in the keychain",
            accounts.div_ceil(3 * 60)
        )
    })
}

/// The sealed database store's file.
pub fn sealed_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("secrets.sqlite3")
}

/// The OS keychain for this service. Debug builds honour a fault hook for end-to-end tests:
/// while a file exists at `TOKENWARDEN_FAULT_KEYCHAIN_WRITES`, every write fails as a
/// locked keychain's would (reads still work). Release builds have no such hook.
pub fn os_store(service: &str) -> Arc<dyn SecretStore> {
    let store: Arc<dyn SecretStore> = Arc::new(OsKeychain::new(service));
    #[cfg(debug_assertions)]
    if let Some(flag) = std::env::var_os("TOKENWARDEN_FAULT_KEYCHAIN_WRITES") {
        return Arc::new(FaultyWrites {
            inner: store,
            flag: flag.into(),
        });
    }
    store
}

#[cfg(debug_assertions)]
struct FaultyWrites {
    inner: Arc<dyn SecretStore>,
    flag: std::path::PathBuf,
}

#[cfg(debug_assertions)]
impl SecretStore for FaultyWrites {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, KeychainError> {
        self.inner.get(key)
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), KeychainError> {
        if self.flag.exists() {
            return Err(KeychainError {
                entry: key.entry(),
                message: "the keychain refused the write (fault injected by the test hook)".into(),
            });
        }
        self.inner.set(key, value)
    }
    fn delete(&self, key: &SecretKey) -> Result<(), KeychainError> {
        self.inner.delete(key)
    }
}

/// In-memory store for unit tests of engine logic. `fail_writes` and `fail_reads` simulate
/// a keychain that refuses writes or reads (locked, or its daemon gone).
#[derive(Default, Clone)]
pub struct MemoryStore {
    items: Arc<Mutex<HashMap<String, Secret>>>,
    pub fail_writes: Arc<std::sync::atomic::AtomicBool>,
    pub fail_reads: Arc<std::sync::atomic::AtomicBool>,
}

impl SecretStore for MemoryStore {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, KeychainError> {
        if self.fail_reads.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(KeychainError {
                entry: key.entry(),
                message: "locked (test)".into(),
            });
        }
        Ok(self
            .items
            .lock()
            .expect("poisoned")
            .get(&key.entry())
            .cloned())
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), KeychainError> {
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(KeychainError {
                entry: key.entry(),
                message: "locked (test)".into(),
            });
        }
        self.items
            .lock()
            .expect("poisoned")
            .insert(key.entry(), value.clone());
        Ok(())
    }
    fn delete(&self, key: &SecretKey) -> Result<(), KeychainError> {
        self.items.lock().expect("poisoned").remove(&key.entry());
        Ok(())
    }
}

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
    journal: super::journal::Settling,
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
    pub fn journaled(mut self, journal: super::journal::Settling) -> Self {
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

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn SecretStore) -> Result<T, KeychainError> + Send + 'static,
    ) -> Result<T, KeychainError> {
        let _permit = self
            .shared
            .permits
            .acquire()
            .await
            .map_err(|_| KeychainError {
                entry: String::new(),
                message: "the keychain client is shut down".into(),
            })?;
        let store = self.store.clone();
        blocking(move || f(&*store)).await
    }

    pub async fn get(&self, key: SecretKey) -> Result<Option<Secret>, KeychainError> {
        self.call(move |store| store.get(&key)).await
    }

    pub async fn set(&self, key: SecretKey, value: Secret) -> Result<(), KeychainError> {
        let written = self.call(move |store| store.set(&key, &value)).await;
        if written.is_ok() {
            self.writes.inc();
        }
        written
    }

    pub async fn delete(&self, key: SecretKey) -> Result<(), KeychainError> {
        // A set deleted before the journal has opened would come back from it at replay.
        let journal = match key {
            SecretKey::Tokens(_) => self.shared.journal.wait().await.clone(),
            _ => None,
        };
        self.call(move |store| {
            store.delete(&key)?;
            // A deleted set (disconnect) must not come back from the journal.
            if let (SecretKey::Tokens(name), Some(journal)) = (&key, journal) {
                journal.forget(name);
            }
            Ok(())
        })
        .await
    }

    pub async fn tokens(&self, name: &AccountName) -> Result<Option<TokenSet>, KeychainError> {
        let key = SecretKey::Tokens(name.clone());
        let Some(json) = self.get(key.clone()).await? else {
            return Ok(None);
        };
        TokenSet::from_stored_json(&json)
            .map(Some)
            .ok_or_else(|| KeychainError {
                entry: key.entry(),
                message:
                    "holds something that is not a Tokenwarden token set; connect the account again"
                        .into(),
            })
    }

    /// Writes a set under a new sequence number.
    pub async fn store_tokens(
        &self,
        name: &AccountName,
        set: &TokenSet,
    ) -> Result<(), KeychainError> {
        self.store_tokens_at(name, set, super::journal::seq::next())
            .await
    }

    /// Writes a set under sequence number `seq` (its journal entry's); once it is in,
    /// the journal drops the entry.
    pub async fn store_tokens_at(
        &self,
        name: &AccountName,
        set: &TokenSet,
        seq: u64,
    ) -> Result<(), KeychainError> {
        let (key, value) = (SecretKey::Tokens(name.clone()), set.to_stored_json_at(seq));
        let (journal, name) = (self.shared.journal.get().cloned().flatten(), name.clone());
        let written = self
            .call(move |store| {
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeychainError> + Send + 'static,
) -> Result<T, KeychainError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(KeychainError {
            entry: String::new(),
            message: format!("keychain task failed: {e}"),
        })
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn only_a_service_that_died_mid_call_is_asked_again() {
        let died = keyring::Error::PlatformFailure(Box::new(std::io::Error::other(
            "DBus error: Message recipient disconnected from message bus without replying",
        )));
        assert!(super::service_died_mid_call(&died));
        let locked =
            keyring::Error::NoStorageAccess(Box::new(std::io::Error::other("prompt dismissed")));
        assert!(!super::service_died_mid_call(&locked));
        assert!(!super::service_died_mid_call(&keyring::Error::NoEntry));
    }
}
