//! API keys for the local HTTP API. Each key is a keychain item (`api-key:LABEL`); the
//! labels and creation times, which are not secret, are indexed in `api-keys.json` in the
//! data dir so they can be listed (keychains cannot enumerate portably). A running engine
//! re-reads the index when its modification time changes, so `api-key create/revoke` in
//! another process takes effect on the next request.
//! The engine also makes a key of its own at start (`engine:api-key`) that the CLI uses to
//! reach it; it is replaced at every start.
//! * `scope` the accounts a key may be limited to, checked against the config

mod scope;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::engine::names::{AccountName, Deadline};
use crate::engine::secret::Secret;
use crate::engine::store::client::Keychain;
use crate::engine::store::item::{SecretKey, StoreError};
pub use scope::Scope;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyInfo {
    pub label: String,
    /// Unix seconds in the file; RFC 3339 in `list --json`.
    #[serde(with = "unix")]
    pub created_at: Deadline,
    /// The accounts this key may see and use; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<AccountName>>,
    /// Whether it may change accounts (connect, disconnect, set a secret, reload). Absent in
    /// the entries of keys made before the permission existed: those are read-only, since
    /// nobody chose to give them more.
    #[serde(default)]
    pub write: bool,
}

/// Who presented a key that opens the API, and what it may see.
#[derive(Clone, Debug)]
pub struct KeyHolder {
    /// The key's label ([`ENGINE_LABEL`] for the engine's own key).
    pub label: String,
    /// `None`: every account. Otherwise only these: the others do not exist for this key.
    pub accounts: Option<Arc<[AccountName]>>,
    /// May change the accounts it sees; otherwise it only reads them (and asks for refreshes).
    pub write: bool,
}

impl KeyHolder {
    /// The holder of the engine's own key: every account, and the right to change them.
    pub fn engine() -> Self {
        Self {
            label: ENGINE_LABEL.into(),
            accounts: None,
            write: true,
        }
    }

    pub fn may_see(&self, name: &AccountName) -> bool {
        self.accounts.as_ref().is_none_or(|a| a.contains(name))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("`{0}` is not a valid key label: use 1–64 of a-z, 0-9, `_` and `-`")]
    BadLabel(String),
    #[error("an API key labelled `{0}` already exists; revoke it first or pick another label")]
    Exists(String),
    #[error("no API key is labelled `{0}`")]
    Unknown(String),
    #[error("`--accounts` names no account; leave it out for a key to all accounts")]
    NoAccounts,
    #[error("--accounts: no account is named `{name}` in {}", config.display())]
    NotInConfig { name: AccountName, config: PathBuf },
    #[error(transparent)]
    Keychain(#[from] StoreError),
    #[error("API key index {}: {message}", path.display())]
    Index { path: PathBuf, message: String },
}

/// The label `verify` gives the engine's own key. Not a plain name, so no key a user creates
/// (labels are `[a-z0-9_-]+`) can ever be taken for it.
pub const ENGINE_LABEL: &str = "(engine)";

pub struct ApiKeys {
    index: PathBuf,
    keychain: Keychain,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    stamp: Option<SystemTime>,
    loaded: bool,
    /// The index version whose reload failure was last logged (one line per change).
    reported: Option<Option<SystemTime>>,
    /// Keys by their SHA-256: finding one costs a hash, however many keys there are. Keys
    /// are 256 random bits, so a lookup that takes longer for a near miss tells nothing.
    keys: HashMap<Digest, KeyHolder>,
    engine_key: Option<Secret>,
}

impl ApiKeys {
    pub fn new(data_dir: &Path, keychain: Keychain) -> Self {
        Self {
            index: data_dir.join("api-keys.json"),
            keychain,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The keys of the engine that `ctx` names, in its keychain: what a client of that
    /// engine (the CLI) reads and writes without opening the engine.
    pub fn of_context(ctx: &crate::engine::paths::Context) -> Self {
        let keychain = crate::engine::store::keychain::os_store(&ctx.keychain_service);
        Self::new(&ctx.data_dir, Keychain::new(keychain))
    }

    pub fn list(&self) -> Result<Vec<KeyInfo>, ApiKeyError> {
        read_index(&self.index)
    }

    /// Makes a key, stores it, and returns it: the only time it is shown. `scope` limits it
    /// to accounts the config has (`None`: all); `write` lets it change them too.
    pub async fn create(
        &self,
        label: &str,
        scope: Option<Scope>,
        write: bool,
    ) -> Result<Secret, ApiKeyError> {
        check_label(label)?;
        let mut index = self.list()?;
        if index.iter().any(|k| k.label == label) {
            return Err(ApiKeyError::Exists(label.to_owned()));
        }
        let key = new_key();
        self.keychain
            .set(SecretKey::ApiKey(label.to_owned()), key.clone())
            .await?;
        index.push(KeyInfo {
            label: label.to_owned(),
            created_at: Deadline::now(),
            accounts: scope.map(Scope::into_accounts),
            write,
        });
        write_index(&self.index, &index)?;
        Ok(key)
    }

    pub async fn revoke(&self, label: &str) -> Result<(), ApiKeyError> {
        let mut index = self.list()?;
        let before = index.len();
        index.retain(|k| k.label != label);
        if index.len() == before {
            return Err(ApiKeyError::Unknown(label.to_owned()));
        }
        // Index first: once the label is gone from it, the key no longer opens anything.
        write_index(&self.index, &index)?;
        self.keychain
            .delete(SecretKey::ApiKey(label.to_owned()))
            .await?;
        Ok(())
    }

    /// A fresh key for this engine's own clients (the CLI), replacing the last one.
    pub async fn make_engine_key(&self) -> Result<(), ApiKeyError> {
        let key = new_key();
        self.keychain.set(SecretKey::EngineKey, key.clone()).await?;
        self.cache.lock().expect("poisoned").engine_key = Some(key);
        Ok(())
    }

    pub async fn engine_key(&self) -> Result<Option<Secret>, ApiKeyError> {
        Ok(self.keychain.get(SecretKey::EngineKey).await?)
    }

    /// Who holds the key presented, if it is one of ours. The engine's own key (every CLI
    /// call) does not depend on the key index.
    pub async fn verify(&self, presented: &str) -> Option<KeyHolder> {
        if let Some(known) = self.verify_cached(presented) {
            return known;
        }
        self.refresh_cache().await;
        let cache = self.cache.lock().expect("poisoned");
        cache.keys.get(&digest(presented)).cloned()
    }

    /// The keys could not be read the last time they were asked for (the keychain is locked or
    /// gone): a key not among those already known may be valid, and cannot be told.
    pub fn unreadable(&self) -> bool {
        !self.cache.lock().expect("poisoned").loaded
    }

    /// [`Self::verify`] without waiting: `None` when the keys must be read again first (the
    /// caller then takes the path that can wait for the keychain).
    pub fn verify_cached(&self, presented: &str) -> Option<Option<KeyHolder>> {
        let stamp = index_stamp(&self.index);
        let cache = self.cache.lock().expect("poisoned");
        if cache
            .engine_key
            .as_ref()
            .is_some_and(|k| k.same_as(presented))
        {
            return Some(Some(KeyHolder::engine()));
        }
        (cache.loaded && cache.stamp == stamp).then(|| cache.keys.get(&digest(presented)).cloned())
    }

    /// Re-reads the keys when the index changed. Fails closed: when the new keys cannot
    /// be read (a locked keychain, a broken index), a key whose label left the index stops
    /// working at once, and no key is added, until a reload succeeds.
    async fn refresh_cache(&self) {
        let stamp = index_stamp(&self.index);
        {
            let cache = self.cache.lock().expect("poisoned");
            if cache.loaded && cache.stamp == stamp {
                return;
            }
        }
        let index = self.list();
        let loaded = match &index {
            Ok(infos) => self.read_keys(infos).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut cache = self.cache.lock().expect("poisoned");
        match loaded {
            Ok(keys) => {
                cache.keys = keys;
                cache.stamp = stamp;
                cache.loaded = true;
            }
            Err(e) => {
                let listed: Vec<String> = index
                    .map(|infos| infos.into_iter().map(|i| i.label).collect())
                    .unwrap_or_default();
                cache
                    .keys
                    .retain(|_, holder| listed.contains(&holder.label));
                cache.loaded = false;
                if cache.reported != Some(stamp) {
                    cache.reported = Some(stamp);
                    tracing::error!(error = %e, kept = cache.keys.len(), "could not reload API keys; only keys still listed and already known work until they can be read");
                }
            }
        }
    }

    async fn read_keys(
        &self,
        infos: &[KeyInfo],
    ) -> Result<HashMap<Digest, KeyHolder>, ApiKeyError> {
        let mut keys = HashMap::new();
        for info in infos {
            if let Some(key) = self
                .keychain
                .get(SecretKey::ApiKey(info.label.clone()))
                .await?
            {
                let holder = KeyHolder {
                    label: info.label.clone(),
                    accounts: info.accounts.as_deref().map(Arc::from),
                    write: info.write,
                };
                keys.insert(digest(key.expose()), holder);
            }
        }
        Ok(keys)
    }
}

/// When the key index last changed: a revocation by another process is seen at the next
/// request.
fn index_stamp(index: &Path) -> Option<SystemTime> {
    std::fs::metadata(index).and_then(|m| m.modified()).ok()
}

type Digest = [u8; 32];

fn digest(key: &str) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes()).into()
}

fn check_label(label: &str) -> Result<(), ApiKeyError> {
    if crate::engine::names::is_plain_name(label) {
        Ok(())
    } else {
        Err(ApiKeyError::BadLabel(label.chars().take(40).collect()))
    }
}

/// 256 random bits, hex, with a prefix that secret scanners and people can recognise.
fn new_key() -> Secret {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Secret::new(format!("tw_{hex}"))
}

fn read_index(path: &Path) -> Result<Vec<KeyInfo>, ApiKeyError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ApiKeyError::Index {
            path: path.to_owned(),
            message: format!("not a key index ({e}); fix or delete it"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ApiKeyError::Index {
            path: path.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// Written to a temporary file and renamed, so a crash never leaves half an index.
fn write_index(path: &Path, index: &[KeyInfo]) -> Result<(), ApiKeyError> {
    let fail = |e: std::io::Error| ApiKeyError::Index {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let json = serde_json::to_vec_pretty(index).expect("serializes");
    crate::engine::system::private::replace(path, &json, 0o600).map_err(fail)
}

mod unix {
    use super::Deadline;
    pub fn serialize<S: serde::Serializer>(d: &Deadline, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.unix())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Deadline, D::Error> {
        Ok(Deadline::from_unix(serde::Deserialize::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::store::memory::MemoryStore;

    #[tokio::test]
    async fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::new(dir.path(), Keychain::new(Arc::new(MemoryStore::default())));
        let key = keys.create("ci", None, false).await.unwrap();
        assert!(key.expose().starts_with("tw_") && key.expose().len() == 67);
        assert!(matches!(
            keys.create("ci", None, false).await,
            Err(ApiKeyError::Exists(_))
        ));
        assert!(matches!(
            keys.create("Bad Label", None, false).await,
            Err(ApiKeyError::BadLabel(_))
        ));
        assert_eq!(
            keys.verify(key.expose()).await.map(|h| h.label).as_deref(),
            Some("ci")
        );
        assert!(keys.verify("tw_wrong").await.is_none());
        let text = std::fs::read_to_string(dir.path().join("api-keys.json")).unwrap();
        assert!(!text.contains(key.expose()), "the index holds no key");
        // A second handle (another process) revokes; this one notices.
        let other = ApiKeys::new(dir.path(), keys.keychain.clone());
        std::thread::sleep(std::time::Duration::from_millis(20)); // a distinct mtime
        other.revoke("ci").await.unwrap();
        assert!(keys.verify(key.expose()).await.is_none());
        assert!(matches!(
            other.revoke("ci").await,
            Err(ApiKeyError::Unknown(_))
        ));
    }

    /// The write permission comes from the index; an entry without it (every key made before
    /// it existed) is read-only.
    #[tokio::test]
    async fn keys_are_read_only_unless_made_to_write_and_old_entries_are_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::new(dir.path(), Keychain::new(Arc::new(MemoryStore::default())));
        let reader = keys.create("reader", None, false).await.unwrap();
        let writer = keys.create("writer", None, true).await.unwrap();
        let may_write = async |key: &Secret| keys.verify(key.expose()).await.unwrap().write;
        assert!(!may_write(&reader).await);
        assert!(may_write(&writer).await);
        assert!(KeyHolder::engine().write);
        let path = dir.path().join("api-keys.json");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"write\": true"), "{text}");
        let old = text
            .replace("\"write\": true", "\"write\": false")
            .replace(",\n    \"write\": false", "");
        assert!(!old.contains("\"write\""), "{old}");
        std::thread::sleep(std::time::Duration::from_millis(20)); // a distinct mtime
        std::fs::write(&path, old).unwrap();
        assert!(
            !may_write(&writer).await,
            "an entry without the field is read-only"
        );
        assert!(keys.list().unwrap().iter().all(|k| !k.write));
    }

    /// A revocation this engine learns of while it cannot read the keychain still takes
    /// effect: the revoked key stops working, the others keep working.
    #[tokio::test]
    async fn a_revocation_takes_effect_even_when_the_keys_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::default());
        let keys = ApiKeys::new(dir.path(), Keychain::new(store.clone()));
        let a = keys.create("a", None, false).await.unwrap();
        let b = keys.create("b", None, true).await.unwrap();
        assert_eq!(
            keys.verify(b.expose()).await.map(|h| h.label).as_deref(),
            Some("b")
        );
        let other = ApiKeys::new(dir.path(), keys.keychain.clone());
        std::thread::sleep(std::time::Duration::from_millis(20)); // a distinct mtime
        other.revoke("b").await.unwrap();
        store
            .fail_reads
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            keys.verify(b.expose()).await.is_none(),
            "revoked stays revoked"
        );
        assert!(keys.unreadable(), "the failed reload is known");
        assert_eq!(
            keys.verify(a.expose()).await.map(|h| h.label).as_deref(),
            Some("a")
        );
        // A broken index: no key is trusted until it can be read again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("api-keys.json"), "{not json").unwrap();
        assert!(keys.verify(a.expose()).await.is_none());
    }
}
