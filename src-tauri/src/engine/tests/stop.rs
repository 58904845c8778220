//! The engine's stop with a keychain that answers slowly (four seconds a write, as a Secret
//! Service under load or timing out might): the last writes at close run a few at a time
//! and stop at their bound, and every set still unsaved is named, each one held by the
//! token journal. A store that sleeps is the only way to make a keychain slow on purpose.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::config::Config;
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;
use crate::engine::store::item::{SecretKey, SecretStore, StoreError};
use crate::engine::store::memory::MemoryStore;
use crate::engine::tests::{endpoint, parts};
use crate::engine::{Engine, EngineError};

/// A memory store whose writes take four seconds while `slow`.
struct SlowStore {
    inner: MemoryStore,
    slow: Arc<AtomicBool>,
}

impl SecretStore for SlowStore {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        self.inner.get(key)
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        if self.slow.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(4));
        }
        self.inner.set(key, value)
    }
    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_writes_at_close_stop_at_their_bound_and_name_every_unsaved_set() {
    let ep = endpoint(
        Duration::ZERO,
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let names: Vec<AccountName> = (0..20)
        .map(|i| format!("s{i:02}").parse().unwrap())
        .collect();
    let text: String = names
        .iter()
        .map(|n| {
            format!(
                "[[account]]\nname = \"{n}\"\nprovider = \"http\"\nurl = \"{}\"\n\n",
                ep.url
            )
        })
        .collect();
    let config = Config::parse(std::path::Path::new("test.toml"), &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let memory = MemoryStore::default();
    let slow = Arc::new(AtomicBool::new(false));
    let store = SlowStore {
        inner: memory.clone(),
        slow: slow.clone(),
    };
    let engine = Engine::with_parts(parts(config, Arc::new(store), dir.path()))
        .await
        .unwrap();
    engine.journal_settled().await;
    memory.fail_writes.store(true, Ordering::SeqCst);
    futures_util::future::join_all(names.iter().map(|n| engine.refresh(n))).await;
    assert!(engine.snapshot().iter().all(|v| v.unsaved));

    // The keychain answers again, but takes four seconds a write: 20 writes, four at a
    // time, would take 20 s.
    memory.fail_writes.store(false, Ordering::SeqCst);
    slow.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let unsaved = engine.close().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "the close took {took:?}");
    let saved = names
        .iter()
        .filter(|n| {
            memory
                .get(&SecretKey::Tokens((*n).clone()))
                .unwrap()
                .is_some()
        })
        .count();
    assert!((4..20).contains(&saved), "{saved} written within the bound");
    assert_eq!(unsaved.len(), 20 - saved, "every other one is named");
    for e in &unsaved {
        assert!(
            matches!(
                e,
                EngineError::Unsaved {
                    journaled: true,
                    ..
                }
            ),
            "held by the journal: {e}"
        );
    }
}
