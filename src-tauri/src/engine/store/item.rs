//! What every secret store holds and the one trait they implement: keychain, sealed database
//! and the fleet's shared store alike. A leaf, so that each store and the journal can name
//! a key without depending on one another.

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
