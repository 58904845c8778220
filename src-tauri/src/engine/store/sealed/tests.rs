use super::*;
use crate::engine::store::memory::MemoryStore;

fn tokens(name: &str) -> SecretKey {
    SecretKey::Tokens(name.parse().unwrap())
}

#[test]
fn a_set_comes_back_and_the_file_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.sqlite3");
    let keychain = MemoryStore::default();
    let store = SealedStore::open(&path, Arc::new(keychain.clone())).unwrap();
    assert!(store.get(&tokens("a")).unwrap().is_none());
    store
        .set(&tokens("a"), &Secret::new("tw-canary-sealed-51"))
        .unwrap();
    assert_eq!(
        store.get(&tokens("a")).unwrap().unwrap().expose(),
        "tw-canary-sealed-51"
    );
    assert!(
        keychain.get(&SecretKey::StoreKey).unwrap().is_some(),
        "the key is in the keychain"
    );
    drop(store);
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("tw-canary-sealed"));
    }
    // Reopened with the same keychain: still there.
    let store = SealedStore::open(&path, Arc::new(keychain)).unwrap();
    assert_eq!(
        store.get(&tokens("a")).unwrap().unwrap().expose(),
        "tw-canary-sealed-51"
    );
    store.delete(&tokens("a")).unwrap();
    assert!(store.get(&tokens("a")).unwrap().is_none());
}

#[test]
fn a_wrong_or_missing_key_says_so_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.sqlite3");
    let keychain = MemoryStore::default();
    SealedStore::open(&path, Arc::new(keychain.clone()))
        .unwrap()
        .set(&tokens("a"), &Secret::new("one"))
        .unwrap();

    let other = MemoryStore::default();
    other
        .set(
            &SecretKey::StoreKey,
            &Secret::new(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
        )
        .unwrap();
    let store = SealedStore::open(&path, Arc::new(other)).unwrap();
    let e = store.set(&tokens("a"), &Secret::new("two")).unwrap_err();
    assert!(e.to_string().contains("does not open"), "{e}");
    assert!(store.get(&tokens("a")).is_err());
    assert!(store.delete(&tokens("a")).is_err());
    drop(store);

    let empty = MemoryStore::default();
    let store = SealedStore::open(&path, Arc::new(empty.clone())).unwrap();
    let e = store.set(&tokens("b"), &Secret::new("three")).unwrap_err();
    assert!(e.to_string().contains("is missing"), "{e}");
    assert!(
        empty.get(&SecretKey::StoreKey).unwrap().is_none(),
        "no new key made"
    );
    drop(store);

    let store = SealedStore::open(&path, Arc::new(keychain)).unwrap();
    assert_eq!(store.get(&tokens("a")).unwrap().unwrap().expose(), "one");
    assert!(store.get(&tokens("b")).unwrap().is_none());
}

#[test]
fn a_row_moved_to_another_name_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.sqlite3");
    let store = SealedStore::open(&path, Arc::new(MemoryStore::default())).unwrap();
    store.set(&tokens("a"), &Secret::new("for a")).unwrap();
    {
        let db = store.db.lock().unwrap();
        db.execute(
            "INSERT INTO sealed (entry, nonce, sealed) SELECT 'tokens:b', nonce, sealed FROM sealed WHERE entry = 'tokens:a'",
            [],
        )
        .unwrap();
    }
    let e = store.get(&tokens("b")).unwrap_err();
    assert!(e.to_string().contains("damaged"), "{e}");
}

#[test]
fn the_databases_failures_name_it_and_a_locked_keychain_stays_the_keychains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.sqlite3");
    let keychain = MemoryStore::default();
    let store = SealedStore::open(&path, Arc::new(keychain.clone())).unwrap();
    store.set(&tokens("a"), &Secret::new("one")).unwrap();
    drop(store);

    let other = MemoryStore::default();
    other
        .set(
            &SecretKey::StoreKey,
            &Secret::new(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
        )
        .unwrap();
    let e = SealedStore::open(&path, Arc::new(other))
        .unwrap()
        .get(&tokens("a"))
        .unwrap_err();
    assert!(e.to_string().starts_with("sealed database "), "{e}");
    assert_eq!(
        e.remedy(),
        crate::engine::error::Remedy::CheckStore {
            store: format!("the sealed database {}", path.display())
        }
    );

    // The key lives in the keychain: a keychain that refuses to give it is the keychain's.
    keychain
        .fail_reads
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let e = SealedStore::open(&path, Arc::new(keychain))
        .unwrap()
        .get(&tokens("a"))
        .unwrap_err();
    assert_eq!(e.backing, Backing::Keychain, "{e}");
    assert_eq!(e.remedy(), crate::engine::error::Remedy::UnlockKeychain);
}
