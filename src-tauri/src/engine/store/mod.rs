//! Where secrets live: the OS keychain (one item per secret), the sealed database (secrets
//! sealed in SQLite, its key in the keychain), or the fleet (Redis, shared by several hosts),
//! plus the token journal that makes a provider's answer durable before the store has it, and
//! the migration between the first two.
//! * `item`     the keys, `StoreError`, and the one trait every store implements
//! * `keychain` the OS keychain          * `sealed`  the sealed database
//! * `fleet`    a shared Redis: coordinator (leases, fences, pub/sub) and its store
//! * `sharing`  what being in a fleet changes for reads and writes  * `restore` what it lost
//! * `client`   the async face the engine uses                      * `journal` `migrate`
//! * `pieces`   values longer than one keychain item (Windows) kept whole across several
//!
//! [`open`] is the one place a store is chosen.

pub mod client;
pub mod fleet;
pub mod item;
pub mod journal;
pub mod keychain;
#[cfg(test)]
pub mod memory;
pub mod migrate;
mod pieces;
mod restore;
pub mod sealed;
mod sharing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::config::fleet::FleetSettings;
use crate::engine::config::StoreKind;
use item::SecretStore;
use keychain::os_store;
pub use restore::Kept;
pub use sharing::Sharing;

/// A store the factory opened: what the engine reads and writes through the one trait,
/// and whether (and with which fleet) it is shared.
pub struct Opened {
    pub store: Arc<dyn SecretStore>,
    pub sharing: Sharing,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Database(#[from] sealed::OpenError),
    #[error(transparent)]
    Shared(#[from] fleet::FleetError),
    #[error("a shared (redis) store needs its `[store]` settings")]
    NoSharedSettings,
}

/// Opens the store of `kind`: the OS keychain; the sealed database in the data dir with its
/// key (and this machine's own secrets) in the keychain; or a fleet's shared Redis, reached
/// with `fleet` and its key proved before anything is written. Blocks.
pub fn open(
    kind: StoreKind,
    fleet: Option<&FleetSettings>,
    service: &str,
    data_dir: &Path,
) -> Result<Opened, OpenError> {
    let keychain = os_store(service);
    let alone = |store| Opened {
        store,
        sharing: Sharing::Alone,
    };
    Ok(match (kind, fleet) {
        (StoreKind::Keychain, _) => alone(keychain),
        (StoreKind::Database, _) => {
            let sealed = sealed::SealedStore::open(&sealed_path(data_dir), keychain.clone())?;
            alone(Arc::new(sealed::Routed {
                sealed: Arc::new(sealed),
                keychain,
            }))
        }
        (StoreKind::Redis, Some(settings)) => {
            let fleet = Arc::new(fleet::Fleet::open(settings, &keychain)?);
            Opened {
                store: fleet.store.clone(),
                sharing: Sharing::Fleet(fleet),
            }
        }
        (StoreKind::Redis, None) => return Err(OpenError::NoSharedSettings),
    })
}

/// Past this many accounts the keychain store makes a first start slow: each token set is an
/// item of its own, and gnome-keyring rewrites its whole file on every change (about three
/// writes a second under load, so 10,000 accounts took most of an hour).
pub const MANY_FOR_KEYCHAIN: usize = 300;

/// What to say, once at start, to someone whose many accounts live in the keychain store.
pub fn store_advice(kind: StoreKind, accounts: usize) -> Option<String> {
    (kind == StoreKind::Keychain && accounts > MANY_FOR_KEYCHAIN).then(|| {
        format!(
            "{accounts} accounts on the keychain store: each token set is a keychain item of its own, and a keychain manages a few writes a second (a first start of {accounts} accounts takes about {} min); set [store] kind = \"database\" in the config and run `tokenwarden store migrate --to database` to keep them sealed in one local file whose key is in the keychain",
            accounts.div_ceil(3 * 60)
        )
    })
}

/// The sealed database store's file.
pub fn sealed_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets.sqlite3")
}
