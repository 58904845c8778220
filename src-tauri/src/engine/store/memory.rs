//! A store in memory, for unit tests of engine logic: it can be told to refuse writes or
//! reads, which is the only way to make a store fail on purpose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::item::{SecretKey, SecretStore, StoreError};
use crate::engine::secret::Secret;

/// In-memory store for unit tests of engine logic. `fail_writes` and `fail_reads` simulate
/// a keychain that refuses writes or reads (locked, or its daemon gone).
#[derive(Default, Clone)]
pub struct MemoryStore {
    items: Arc<Mutex<HashMap<String, Secret>>>,
    pub fail_writes: Arc<std::sync::atomic::AtomicBool>,
    pub fail_reads: Arc<std::sync::atomic::AtomicBool>,
}

impl SecretStore for MemoryStore {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        if self.fail_reads.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::keychain(key.entry(), "locked (test)"));
        }
        Ok(self
            .items
            .lock()
            .expect("poisoned")
            .get(&key.entry())
            .cloned())
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::keychain(key.entry(), "locked (test)"));
        }
        self.items
            .lock()
            .expect("poisoned")
            .insert(key.entry(), value.clone());
        Ok(())
    }
    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        self.items.lock().expect("poisoned").remove(&key.entry());
        Ok(())
    }
}
