//! Where secrets live: the OS keychain (one item per secret), the sealed database (secrets
//! sealed in SQLite, its key in the keychain), or the fleet (Redis, shared by several hosts),
//! plus the token journal that makes a provider's answer durable before the store has it, and
//! the migration between the first two.

pub mod client;
pub mod fleet;
pub mod item;
pub mod journal;
pub mod keychain;
pub mod memory;
pub mod migrate;
pub mod sealed;

use std::sync::Arc;

use crate::engine::config::StoreKind;
use item::SecretStore;
use keychain::os_store;

/// Where this machine keeps secrets for `kind`: the OS keychain, or the sealed database in
/// the data dir with its key (and API keys) in the keychain.
pub fn store_for(
    kind: StoreKind,
    service: &str,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn SecretStore>, sealed::OpenError> {
    let keychain = os_store(service);
    Ok(match kind {
        StoreKind::Keychain => keychain,
        StoreKind::Database => {
            let sealed = sealed::SealedStore::open(&sealed_path(data_dir), keychain.clone())?;
            Arc::new(sealed::Routed {
                sealed: Arc::new(sealed),
                keychain,
            })
        }
        // The engine opens a shared store itself (it needs the fleet, not only a store).
        StoreKind::Redis => return Err(sealed::OpenError::NotMovable),
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
pub fn sealed_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("secrets.sqlite3")
}
