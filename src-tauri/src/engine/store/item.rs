//! What every secret store holds, how it fails, and the one trait they implement: keychain,
//! sealed database and the fleet's shared store alike. A leaf, so that each store and the
//! journal can name a key and an error without depending on one another.

use std::path::PathBuf;

use crate::engine::error::remedy::Remedy;
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;

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
    /// `doctor`'s probe: written, read back and deleted to show the store works.
    Probe,
}

/// Whose secret an item is, which decides where a store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// An account's token set or client secret: the thousands, so the database store seals
    /// them in its file, and what the hosts of a fleet share in Redis.
    Account,
    /// This machine's own (API keys, the engine's key, the store's, the journal's and
    /// Redis's): a handful, always in the keychain, where the CLI reads them.
    Machine,
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
            Self::Probe => "doctor:probe".to_owned(),
        }
    }

    /// The one definition of which items are shared (and sealed in the database store).
    pub fn scope(&self) -> Scope {
        match self {
            Self::Tokens(_) | Self::ClientSecret(_) => Scope::Account,
            Self::ApiKey(_)
            | Self::EngineKey
            | Self::StoreKey
            | Self::RedisPassword
            | Self::JournalKey
            | Self::Probe => Scope::Machine,
        }
    }
}

/// Where a failed call went. Each has its own remedy: a Redis outage or a damaged database
/// file must not send anyone to unlock their keychain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// The OS keychain (Secret Service, macOS Keychain, Windows Credential Manager).
    Keychain,
    /// The sealed database file of `[store] kind = "database"`.
    Database { path: PathBuf },
    /// The Redis of `[store] kind = "redis"`, by its configured URL (which never holds a
    /// password: the config refuses one).
    SharedStore { url: String },
}

impl Backing {
    /// The store in a few words, for messages: "keychain", "sealed database", "shared store".
    pub fn name(&self) -> &'static str {
        match self {
            Self::Keychain => "keychain",
            Self::Database { .. } => "sealed database",
            Self::SharedStore { .. } => "shared store",
        }
    }

    pub fn remedy(&self) -> Remedy {
        match self {
            Self::Keychain => Remedy::UnlockKeychain,
            Self::Database { path } => Remedy::CheckStore {
                store: format!("the sealed database {}", path.display()),
            },
            Self::SharedStore { url } => Remedy::CheckStore {
                store: format!("the shared store (Redis at {url})"),
            },
        }
    }
}

/// A store call that failed: which store, which item, and the store's own words.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}: {message}", self.place())]
pub struct StoreError {
    pub backing: Backing,
    pub entry: String,
    /// The store's own message: it names the failure, never the stored value.
    pub message: String,
    /// The value is more than the store holds: the config must choose another store,
    /// which unlocking would not help (a flag, not a `Remedy`: every engine error carries
    /// this, and must stay small).
    pub too_large: bool,
}

impl StoreError {
    pub fn keychain(entry: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            backing: Backing::Keychain,
            entry: entry.into(),
            message: message.into(),
            too_large: false,
        }
    }

    /// A value the keychain cannot hold, however it is split: the config must choose a
    /// store that can (`message` says which).
    pub fn too_large_for_keychain(entry: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            too_large: true,
            ..Self::keychain(entry, message)
        }
    }

    pub fn remedy(&self) -> Remedy {
        if self.too_large {
            Remedy::FixConfig { line: None }
        } else {
            self.backing.remedy()
        }
    }

    fn place(&self) -> String {
        match &self.backing {
            Backing::Keychain => format!("keychain item `{}`", self.entry),
            Backing::Database { path } => {
                format!("sealed database {}, item `{}`", path.display(), self.entry)
            }
            Backing::SharedStore { url } => format!("shared store {url}, item `{}`", self.entry),
        }
    }
}

/// What a read found under a key that holds anything at all.
#[derive(Debug)]
pub struct Found {
    /// `None`: deleted (a shared store keeps a deletion, sealed, so that it is known).
    pub value: Option<Secret>,
    /// The fence it was written with, in a shared store (`None`: anywhere else, or a shared
    /// store's entry from before fences were sealed in, which vouches for none).
    pub fence: Option<u64>,
}

/// What a write carries into a shared store, where several hosts write (see
/// `fleet::fences`). A store only this host uses has nothing to compare it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// The last write wins: client secrets, and every write to a store only this host uses.
    Unfenced,
    /// A token set fetched under the lease with this fence (or written under a lease of its
    /// own): it replaces anything not newer.
    Leased(u64),
    /// This host's copy of the set it holds, with that set's fence, stored again after the
    /// shared store lost it or went back to an older one: it goes in only where nothing or
    /// something strictly older is, so it never replaces a set fetched since.
    Restore(u64),
}

/// A store of secret strings. The real ones are the OS keychain, the sealed database and a
/// fleet's shared store; tests of pure logic use [`MemoryStore`](super::memory::MemoryStore).
pub trait SecretStore: Send + Sync + 'static {
    /// Where this store keeps `key`, for the errors of calls about it. Stores that keep an
    /// item anywhere but the OS keychain say so.
    fn backing(&self, _key: &SecretKey) -> Backing {
        Backing::Keychain
    }
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError>;
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError>;
    /// Deleting an absent item is not an error.
    fn delete(&self, key: &SecretKey) -> Result<(), StoreError>;

    /// Reads `key` with what only a shared store tells apart: `None` when nothing at all is
    /// stored (never written, or lost: Redis restarted empty), else what is and its fence.
    fn read(&self, key: &SecretKey) -> Result<Option<Found>, StoreError> {
        Ok(self.get(key)?.map(|value| Found {
            value: Some(value),
            fence: None,
        }))
    }

    /// Writes `value` (`None`: deletes it) carrying `fence`; `false` when a shared store
    /// refused it because a newer write got there first.
    fn write(
        &self,
        key: &SecretKey,
        value: Option<&Secret>,
        _fence: Fence,
    ) -> Result<bool, StoreError> {
        match value {
            Some(value) => self.set(key, value)?,
            None => self.delete(key)?,
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_names_itself_and_only_the_keychain_says_to_unlock_it() {
        let redis = StoreError {
            backing: Backing::SharedStore {
                url: "redis://10.0.0.5:6379".into(),
            },
            entry: "tokens:fb".into(),
            message: "Connection refused".into(),
            too_large: false,
        };
        assert_eq!(
            redis.to_string(),
            "shared store redis://10.0.0.5:6379, item `tokens:fb`: Connection refused"
        );
        assert_eq!(
            redis.remedy(),
            Remedy::CheckStore {
                store: "the shared store (Redis at redis://10.0.0.5:6379)".into()
            }
        );
        let database = StoreError {
            backing: Backing::Database {
                path: "/d/secrets.sqlite3".into(),
            },
            ..redis.clone()
        };
        assert!(!database.to_string().contains("keychain"), "{database}");
        assert_ne!(database.remedy(), Remedy::UnlockKeychain);
        let keychain = StoreError::keychain("tokens:fb", "locked");
        assert_eq!(keychain.to_string(), "keychain item `tokens:fb`: locked");
        assert_eq!(keychain.remedy(), Remedy::UnlockKeychain);
    }
}
