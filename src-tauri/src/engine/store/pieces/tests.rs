use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use super::*;

/// Items in memory that refuse what the limit would (as keyring-rs does on Windows), and
/// may be told to fail after a number of writes (a crash mid-write).
struct Shelf {
    items: RefCell<BTreeMap<String, String>>,
    limit: Limit,
    writes_left: Cell<Option<usize>>,
}

impl Shelf {
    fn new(limit: Limit) -> Self {
        Self {
            items: RefCell::default(),
            limit,
            writes_left: Cell::new(None),
        }
    }
    fn names(&self) -> Vec<String> {
        self.items.borrow().keys().cloned().collect()
    }
}

impl Items for &Shelf {
    fn read(&self, entry: &str) -> Result<Option<Secret>, StoreError> {
        Ok(self.items.borrow().get(entry).cloned().map(Secret::new))
    }
    fn write(&self, entry: &str, value: &str) -> Result<(), StoreError> {
        if let Some(left) = self.writes_left.get() {
            if left == 0 {
                return Err(StoreError::keychain(entry, "crashed"));
            }
            self.writes_left.set(Some(left - 1));
        }
        assert!(
            self.limit.size(value) <= self.limit.units,
            "{entry}: {} units is more than an item holds",
            self.limit.size(value)
        );
        self.items.borrow_mut().insert(entry.into(), value.into());
        Ok(())
    }
    fn remove(&self, entry: &str) -> Result<(), StoreError> {
        self.items.borrow_mut().remove(entry);
        Ok(())
    }
}

fn pieces(shelf: &Shelf) -> Pieces<&Shelf> {
    Pieces {
        items: shelf,
        limit: shelf.limit,
    }
}

fn read(store: &Pieces<&Shelf>, entry: &str) -> Option<String> {
    store
        .get(entry)
        .expect("read")
        .map(|s| s.expose().to_owned())
}

/// A token set as a Microsoft or Google answer makes it: three JWT-sized strings, 6 kB.
fn big_set(seed: char) -> String {
    let jwt: String = std::iter::repeat_n(seed, 2000).collect();
    format!(r#"{{"access_token":"{jwt}","refresh_token":"{jwt}","id_token":"{jwt}"}}"#)
}

#[test]
fn a_set_longer_than_an_item_is_kept_in_pieces_and_read_back_whole() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    let value = big_set('a');
    assert!(value.len() > 6000);
    store.set("tokens:ms", &Secret::new(value.clone())).unwrap();
    assert_eq!(read(&store, "tokens:ms").as_deref(), Some(value.as_str()));
    // 6,052 characters of 1,280 per item: 5 pieces beside the manifest.
    assert_eq!(shelf.names().len(), 6, "{:?}", shelf.names());
    assert!(shelf.items.borrow()["tokens:ms"].starts_with(MANIFEST));
}

#[test]
fn a_set_that_fits_is_one_item_as_before() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    let value: String = std::iter::repeat_n('x', 1280).collect();
    store.set("tokens:a", &Secret::new(value.clone())).unwrap();
    assert_eq!(shelf.names(), ["tokens:a"]);
    assert_eq!(shelf.items.borrow()["tokens:a"], value);
}

#[test]
fn characters_that_take_two_units_are_counted_and_never_cut() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    // U+1F511 takes two UTF-16 units (4 bytes of an item) each; é one.
    let value: String = "é🔑".repeat(900);
    store
        .set("client-secret:a", &Secret::new(value.clone()))
        .unwrap();
    assert_eq!(read(&store, "client-secret:a"), Some(value));
}

#[test]
fn a_shorter_value_replaces_pieces_and_none_are_left_behind() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    store.set("tokens:a", &Secret::new(big_set('a'))).unwrap();
    store.set("tokens:a", &Secret::new(big_set('b'))).unwrap();
    assert_eq!(read(&store, "tokens:a"), Some(big_set('b')));
    assert_eq!(shelf.names().len(), 6, "the first set's pieces are gone");
    store.set("tokens:a", &Secret::new("short")).unwrap();
    assert_eq!(shelf.names(), ["tokens:a"]);
    store.set("tokens:a", &Secret::new(big_set('c'))).unwrap();
    store.delete("tokens:a").unwrap();
    assert!(shelf.names().is_empty(), "{:?}", shelf.names());
}

#[test]
fn writing_the_same_set_twice_keeps_its_pieces() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    store.set("tokens:a", &Secret::new(big_set('a'))).unwrap();
    store.set("tokens:a", &Secret::new(big_set('a'))).unwrap();
    assert_eq!(read(&store, "tokens:a"), Some(big_set('a')));
}

#[test]
fn a_crash_before_the_manifest_leaves_the_old_value_whole() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    store.set("tokens:a", &Secret::new(big_set('a'))).unwrap();
    // Three of the new set's five pieces are written, then the process dies.
    shelf.writes_left.set(Some(3));
    assert!(store.set("tokens:a", &Secret::new(big_set('b'))).is_err());
    shelf.writes_left.set(None);
    assert_eq!(read(&store, "tokens:a"), Some(big_set('a')));
    // The next write succeeds and reads back.
    store.set("tokens:a", &Secret::new(big_set('b'))).unwrap();
    assert_eq!(read(&store, "tokens:a"), Some(big_set('b')));
}

#[test]
fn a_missing_or_changed_piece_is_an_error_never_a_short_value() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    store.set("tokens:a", &Secret::new(big_set('a'))).unwrap();
    let third = shelf
        .names()
        .into_iter()
        .find(|n| n.ends_with(".3"))
        .unwrap();
    let kept = shelf.items.borrow_mut().remove(&third).unwrap();
    let e = store.get("tokens:a").unwrap_err();
    assert!(e.to_string().contains("piece 3"), "{e}");
    assert!(e.to_string().contains("connect the account again"), "{e}");

    shelf
        .items
        .borrow_mut()
        .insert(third, kept.replace('a', "b"));
    let e = store.get("tokens:a").unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    assert!(!e.to_string().contains("aaaa"), "no value in errors: {e}");
}

#[test]
fn a_value_that_looks_like_a_manifest_is_kept_as_one() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    let sly = format!("{MANIFEST}pieces=1 sha256={}", "0".repeat(64));
    store
        .set("client-secret:a", &Secret::new(sly.clone()))
        .unwrap();
    assert_eq!(read(&store, "client-secret:a"), Some(sly));
}

#[test]
fn a_value_too_large_for_any_number_of_items_names_the_database_store() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    let store = pieces(&shelf);
    let huge: String = std::iter::repeat_n('z', 1280 * MOST_PIECES + 1).collect();
    let e = store.set("tokens:a", &Secret::new(huge)).unwrap_err();
    assert!(e.to_string().contains("kind = \"database\""), "{e}");
    assert_eq!(e.remedy(), crate::engine::Remedy::FixConfig { line: None });
    assert!(
        shelf.names().is_empty(),
        "nothing written: {:?}",
        shelf.names()
    );
}

#[test]
fn a_damaged_manifest_is_named() {
    let shelf = Shelf::new(Limit::CREDENTIAL_MANAGER);
    shelf
        .items
        .borrow_mut()
        .insert("tokens:a".into(), format!("{MANIFEST}pieces=lots"));
    let e = pieces(&shelf).get("tokens:a").unwrap_err();
    assert!(e.to_string().contains("keychain item `tokens:a`"), "{e}");
    assert!(e.to_string().contains("damaged"), "{e}");
}
