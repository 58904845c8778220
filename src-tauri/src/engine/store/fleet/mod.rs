//! `[store] kind = "redis"`: several hosts share their accounts through one Redis, with one
//! refresher per account among them.
//! * token sets and client secrets live in Redis sealed with the store key, bound to their
//!   namespace, entry name and fence, so Redis never holds a plaintext secret and a blob
//!   cannot be moved or passed off as newer without the key;
//! * a refresh takes the account's lease (`SET NX PX`, renewed while it runs) and with it a
//!   fencing number, above every fence the host has seen; a token set is written by a Lua
//!   script only if no newer fence wrote before it, so a host that stalled past its lease
//!   never overwrites a newer set;
//! * a host never adopts a stored set older than the one it holds (Redis restarted from a
//!   snapshot, a replica promoted, a backup restored): it keeps its own and stores it again;
//! * every write is published; the other hosts re-read that account at once, so serving
//!   stays in memory and never polls Redis.
//!
//! A fleet is two halves over one connection: the [`Coordinator`] (leases, the fences that
//! follow, what the other hosts write; async) and the [`FleetStore`] (the sealed entries,
//! behind the one `SecretStore` trait), which writes with the fence it is given and knows
//! no lease.
//! * `coordinator` leases, fences, counts     * `lease`   the one acquire loop, a lease held
//! * `fences`  what this host knows of fences  * `listen`  hears other hosts' writes
//! * `store`   the `SecretStore` over Redis    * `entries` reading and writing sealed entries
//! * `seal`    what a blob is bound to         * `scripts` the Lua that checks and writes
//! * `keys`    where the store key comes from  * `link`    the one connection, Redis key names
//! * `turns`   the engine's side: whose turn it is to refresh, hearing the other hosts

mod coordinator;
mod entries;
mod fences;
mod keys;
mod lease;
mod link;
mod listen;
mod scripts;
mod seal;
mod store;
#[cfg(test)]
mod tests;
pub(crate) mod turns;

use std::sync::Arc;

pub use coordinator::Coordinator;
pub use keys::{init_key, new_key, KEY_ENV};
pub use lease::{Lease, Leased};
pub use listen::Heard;
pub use store::FleetStore;

use crate::engine::config::fleet::FleetSettings;
use crate::engine::names::AccountName;
use crate::engine::store::item::{Backing, SecretStore, StoreError};

/// The password of the shared Redis, before the keychain item `store:redis-password`.
pub const PASSWORD_ENV: &str = "TOKENWARDEN_REDIS_PASSWORD";

#[derive(Debug)]
pub enum FleetError {
    Redis { url: String, detail: String },
    WrongKey { url: String, namespace: String },
    Key(String),
    Busy { account: AccountName },
    Unopened { url: String, entry: String },
}

impl FleetError {
    /// What went wrong, without saying which store: a [`StoreError`] names it itself.
    fn detail(&self) -> String {
        match self {
            Self::Redis { detail, .. } => detail.clone(),
            Self::WrongKey { namespace, .. } => format!("the store key does not open what is stored under `{namespace}` (another key wrote it); nothing was changed. Give this host the fleet's key (TOKENWARDEN_STORE_KEY, store.key_file or the keychain item store:key)"),
            Self::Key(what) => what.clone(),
            Self::Busy { account } => format!("another host has been refreshing `{account}` for longer than its lease; try again"),
            Self::Unopened { .. } => "does not open with the store key (damaged, written with another key, or copied from another entry, fleet or fence); nothing was taken from it".into(),
        }
    }

    /// This failure as a call about `entry` that failed in the store at `url`.
    pub fn about(&self, url: &str, entry: String) -> StoreError {
        StoreError {
            backing: Backing::SharedStore {
                url: url.to_owned(),
            },
            entry,
            message: self.detail(),
            too_large: false,
        }
    }
}

impl std::fmt::Display for FleetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redis { url, .. } | Self::WrongKey { url, .. } => {
                write!(f, "shared store {url}: {}", self.detail())
            }
            Self::Unopened { url, entry } => {
                write!(f, "shared store {url}: `{entry}` {}", self.detail())
            }
            Self::Key(_) | Self::Busy { .. } => f.write_str(&self.detail()),
        }
    }
}

impl std::error::Error for FleetError {}

/// A host's part in a fleet: its coordinator and its store, over one connection.
pub struct Fleet {
    pub coordinator: Arc<Coordinator>,
    pub store: Arc<FleetStore>,
}

impl Fleet {
    /// Finds the store key, connects and proves the key against the store's check entry
    /// (sealing one into an empty store). A wrong key is an error before anything is
    /// written. Blocks.
    pub fn open(
        settings: &FleetSettings,
        keychain: &Arc<dyn SecretStore>,
    ) -> Result<Self, FleetError> {
        let (key_text, _) = keys::store_key(settings, keychain.as_ref())?;
        let key = crate::engine::store::sealed::decode_key(&key_text).ok_or_else(|| {
            FleetError::Key(
                "the store key is not one `tokenwarden store init` makes (base64 of 32 bytes)"
                    .into(),
            )
        })?;
        let link = Arc::new(link::Link::new(settings, keychain.as_ref())?);
        let store = FleetStore::new(link.clone(), key, keychain.clone());
        store.prove_key()?;
        Ok(Self {
            coordinator: coordinator::Coordinator::new(link),
            store: Arc::new(store),
        })
    }
}
