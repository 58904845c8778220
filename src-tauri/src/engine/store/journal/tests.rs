//! The journal on its own, with an in-memory keychain for its key and a real file: an entry
//! written comes back at the next open (sealed, 0600, no token text in the file), the
//! newest per account; a saved or forgotten one does not; superseded entries do not pile up
//! while nothing is saved; a torn tail is dropped quietly;
//! a journal that does not open (another key, garbage) is moved aside and a fresh one
//! works; a store that does not journal makes neither a file nor a key.

use super::{journal_path, seq, Journal};
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;
use crate::engine::store::item::{SecretKey, SecretStore};
use crate::engine::store::memory::MemoryStore;

fn name(n: &str) -> AccountName {
    n.parse().unwrap()
}

fn set(token: &str) -> Secret {
    Secret::new(format!(
        r#"{{"access_token":"{token}","refresh_token":"{token}-r","expires_at":1900000000}}"#
    ))
}

fn path(dir: &std::path::Path) -> std::path::PathBuf {
    journal_path(dir, "tokenwarden")
}

fn open(dir: &std::path::Path, keychain: &MemoryStore) -> (Journal, Vec<super::Entry>) {
    Journal::open(&path(dir), keychain, true).unwrap().unwrap()
}

fn asides(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().contains(".damaged-")
        })
        .count()
}

#[test]
fn an_entry_comes_back_at_the_next_open_and_the_file_holds_no_token_text() {
    let dir = tempfile::tempdir().unwrap();
    let keychain = MemoryStore::default();
    let (journal, entries) = open(dir.path(), &keychain);
    assert!(entries.is_empty());
    assert!(
        keychain.get(&SecretKey::JournalKey).unwrap().is_some(),
        "the key is made on first use"
    );
    let first = seq::next();
    journal
        .write(&name("fb"), first, &set("tw-canary-journal-1"))
        .unwrap();
    journal
        .write(&name("fb"), first + 1, &set("tw-canary-journal-2"))
        .unwrap();
    journal
        .write(&name("gh"), first + 2, &set("tw-canary-journal-3"))
        .unwrap();
    drop(journal); // the process dies here: nothing was saved

    let bytes = std::fs::read(path(dir.path())).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("tw-canary"),
        "sealed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (_journal, entries) = open(dir.path(), &keychain);
    let got: Vec<(String, u64, String)> = entries
        .iter()
        .map(|e| (e.account.to_string(), e.seq, e.stored.expose().to_owned()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "fb".into(),
                first + 1,
                set("tw-canary-journal-2").expose().to_owned()
            ),
            (
                "gh".into(),
                first + 2,
                set("tw-canary-journal-3").expose().to_owned()
            ),
        ],
        "the newest entry of each account"
    );
    assert!(seq::next() > first + 2, "numbers go on above the journal's");
}

#[test]
fn a_saved_entry_is_not_replayed_and_a_forgotten_one_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let keychain = MemoryStore::default();
    let (journal, _) = open(dir.path(), &keychain);
    let s = seq::next();
    journal.write(&name("a"), s, &set("a1")).unwrap();
    journal.write(&name("b"), s + 1, &set("b1")).unwrap();
    journal.write(&name("c"), s + 2, &set("c1")).unwrap();
    journal.saved(&name("a"), s);
    journal.saved(&name("b"), s); // an older set's write: b's entry stays
    journal.forget(&name("c"));
    drop(journal);
    let (journal, entries) = open(dir.path(), &keychain);
    let names: Vec<String> = entries.iter().map(|e| e.account.to_string()).collect();
    assert_eq!(names, ["b"]);
    journal.saved(&name("b"), s + 1);
    let len = std::fs::metadata(path(dir.path())).unwrap().len();
    assert!(len < 100, "emptied but for a mark: {len} bytes");
    drop(journal);
    assert!(open(dir.path(), &keychain).1.is_empty());
}

#[test]
fn a_record_cut_short_by_a_crash_is_dropped_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let keychain = MemoryStore::default();
    let (journal, _) = open(dir.path(), &keychain);
    journal.write(&name("a"), seq::next(), &set("a1")).unwrap();
    journal.write(&name("b"), seq::next(), &set("b1")).unwrap();
    drop(journal);
    let path = path(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    let (_journal, entries) = open(dir.path(), &keychain);
    let names: Vec<String> = entries.iter().map(|e| e.account.to_string()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(asides(dir.path()), 0, "a torn tail is not damage");
}

#[test]
fn a_journal_sealed_with_another_key_or_full_of_garbage_is_moved_aside_and_a_new_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let keychain = MemoryStore::default();
    let (journal, _) = open(dir.path(), &keychain);
    journal.write(&name("a"), seq::next(), &set("a1")).unwrap();
    drop(journal);
    // The key in the keychain was replaced (another machine's, a restored backup).
    keychain.delete(&SecretKey::JournalKey).unwrap();
    let (journal, entries) = open(dir.path(), &keychain);
    assert!(entries.is_empty());
    assert_eq!(asides(dir.path()), 1);
    journal.write(&name("a"), seq::next(), &set("a2")).unwrap();
    drop(journal);
    assert_eq!(
        open(dir.path(), &keychain).1.len(),
        1,
        "the new journal works"
    );

    std::fs::write(path(dir.path()), [0xffu8; 64]).unwrap();
    let (_journal, entries) = open(dir.path(), &keychain);
    assert!(entries.is_empty());
    assert_eq!(asides(dir.path()), 2);
}

#[test]
fn a_store_that_does_not_journal_makes_no_file_and_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let keychain = MemoryStore::default();
    assert!(Journal::open(&path(dir.path()), &keychain, false)
        .unwrap()
        .is_none());
    assert!(!path(dir.path()).exists());
    assert!(keychain.get(&SecretKey::JournalKey).unwrap().is_none());
    // But one an earlier run left is opened, to be replayed.
    let (journal, _) = open(dir.path(), &keychain);
    journal.write(&name("a"), seq::next(), &set("a1")).unwrap();
    drop(journal);
    let (journal, entries) = Journal::open(&path(dir.path()), &keychain, false)
        .unwrap()
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert!(!journal.writes());
}

#[test]
fn a_keychain_that_does_not_answer_leaves_the_journal_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let keychain = MemoryStore::default();
    let (journal, _) = open(dir.path(), &keychain);
    journal.write(&name("a"), seq::next(), &set("a1")).unwrap();
    drop(journal);
    let before = std::fs::read(path(dir.path())).unwrap();
    keychain
        .fail_reads
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let e = Journal::open(&path(dir.path()), &keychain, true)
        .err()
        .expect("no key, no journal");
    assert!(e.to_string().contains("journal:key"), "{e}");
    assert_eq!(std::fs::read(path(dir.path())).unwrap(), before);
    assert_eq!(asides(dir.path()), 0);
}

#[test]
fn superseded_entries_do_not_pile_up_while_the_keychain_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keychain = MemoryStore::default();
    let (journal, _) = open(dir.path(), &keychain);
    // 1 KiB sets, 600 writes: well past the size at which the file is compacted.
    for round in 0..300 {
        for account in ["a", "b"] {
            let text = format!("{account}-{round}-{}", "x".repeat(1024));
            journal
                .write(&name(account), seq::next(), &set(&text))
                .unwrap();
        }
    }
    let len = std::fs::metadata(path(dir.path())).unwrap().len();
    assert!(len < 512 * 1024, "{len} bytes for two accounts");
    drop(journal);
    let (_journal, entries) = open(dir.path(), &keychain);
    let newest: Vec<String> = entries
        .iter()
        .map(|e| e.stored.expose().to_owned())
        .collect();
    let pad = "x".repeat(1024);
    let want = [set(&format!("a-299-{pad}")), set(&format!("b-299-{pad}"))];
    assert_eq!(newest, [want[0].expose(), want[1].expose()]);
}
