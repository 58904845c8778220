//! The fleet's [`SecretStore`]: token sets and client secrets in Redis, everything that
//! belongs to this host alone (API keys, the engine's key, the store key itself) in its
//! keychain.

use std::sync::Arc;

use super::{Fleet, FleetError, Heard};
use crate::engine::secret::Secret;
use crate::engine::store::item::{Backing, Scope, SecretKey, SecretStore, StoreError};

pub struct FleetStore {
    pub fleet: Arc<Fleet>,
    pub keychain: Arc<dyn SecretStore>,
}

impl FleetStore {
    fn shared(key: &SecretKey) -> bool {
        key.scope() == Scope::Account
    }

    fn fail(&self, key: &SecretKey, e: &FleetError) -> StoreError {
        e.about(self.fleet.url(), key.entry())
    }

    /// Writes a shared entry (or its deletion, `None`). A token set carries the fence the
    /// fleet chooses for it (its lease's, or the held set's when stored again); one that a
    /// newer set was there for is dropped, and this host takes the newer one instead.
    fn write_shared(&self, key: &SecretKey, value: Option<&Secret>) -> Result<(), FleetError> {
        let SecretKey::Tokens(name) = key else {
            return self.fleet.write_unfenced(key, value);
        };
        if !self.fleet.write_tokens(name, value)? {
            // Another host stored a newer set while this one waited to be saved (or, for a
            // copy stored again, one at least as new): that set wins, and this host takes
            // it as if it had heard it.
            tracing::info!(account = %name, "a newer token set from another host replaces this one");
            let _ = self.fleet.heard.send(Heard::Changed(name.clone()));
        }
        Ok(())
    }
}

impl SecretStore for FleetStore {
    fn backing(&self, key: &SecretKey) -> Backing {
        if !Self::shared(key) {
            return self.keychain.backing(key);
        }
        Backing::SharedStore {
            url: self.fleet.url().to_owned(),
        }
    }

    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        if !Self::shared(key) {
            return self.keychain.get(key);
        }
        self.fleet.get(key).map_err(|e| self.fail(key, &e))
    }

    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        if !Self::shared(key) {
            return self.keychain.set(key, value);
        }
        self.write_shared(key, Some(value))
            .map_err(|e| self.fail(key, &e))
    }

    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        if !Self::shared(key) {
            return self.keychain.delete(key);
        }
        if let SecretKey::Tokens(name) = key {
            // Whoever refreshed last, a disconnect wins: it takes a fence of its own.
            self.fleet.forget_fence(name);
        }
        self.write_shared(key, None).map_err(|e| self.fail(key, &e))
    }
}
