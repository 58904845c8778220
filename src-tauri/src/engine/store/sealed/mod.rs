//! `[store] kind = "database"`: token sets and client secrets sealed (ChaCha20-Poly1305)
//! in a SQLite file in the data dir, under one key that lives in the OS keychain, as
//! browsers and password managers keep their logins. The per-item keychain stays the
//! default; this one is for thousands of accounts: gnome-keyring rewrites its whole
//! keyring file on every change, so ten thousand items cost minutes per start, while a
//! row here costs microseconds.
//!
//! Each row is sealed with a fresh random nonce and its entry name as associated data, so
//! a row copied under another name does not open. A check row, sealed when the key is made,
//! tells a wrong key from a damaged row: a store whose key is missing or wrong says so and
//! writes nothing, and the key is made only for an empty store.
//!
//! The AEAD is ring's (already in the tree through rustls), not written by hand.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension};

use crate::engine::secret::Secret;
use crate::engine::store::item::{Backing, Scope, SecretKey, SecretStore, StoreError};

/// The row that proves the key: its plaintext is fixed, so only the right key opens it.
const CHECK_ENTRY: &str = "store:check";
const CHECK_TEXT: &str = "tokenwarden sealed store v1";

/// Why the sealed database cannot be used at all. A damaged file is its own trouble, with its
/// own remedy: the keychain is fine, and unlocking it would not help.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed store {} is damaged ({detail}): restore it from a backup (the key in the keychain still opens it), or move it aside and connect each account again", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error("the sealed store {}: {detail}", path.display())]
    Unusable { path: PathBuf, detail: String },
}

impl OpenError {
    fn of(path: &Path, e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        let detail = e.to_string();
        match e.sqlite_error_code() {
            Some(DatabaseCorrupt | NotADatabase) => Self::Damaged {
                path: path.to_owned(),
                detail,
            },
            _ => Self::Unusable {
                path: path.to_owned(),
                detail,
            },
        }
    }
}

pub struct SealedStore {
    path: PathBuf,
    db: Mutex<Connection>,
    /// Holds the key (the store's item `store:key`).
    keychain: Arc<dyn SecretStore>,
    key: OnceLock<LessSafeKey>,
    rng: SystemRandom,
}

impl SealedStore {
    /// Opens (creating) the database; the key is read from the keychain on first use, so a
    /// keychain that is locked at start makes accounts wait, like the per-item store does.
    /// A damaged file is found here, before anything is read or written (`quick_check`
    /// reads every page: milliseconds for ten thousand accounts).
    pub fn open(path: &Path, keychain: Arc<dyn SecretStore>) -> Result<Self, OpenError> {
        let fail = |e: rusqlite::Error| OpenError::of(path, e);
        // Ours alone from its first byte (SQLite makes its -wal and -shm files alike).
        crate::engine::system::private::create(path).map_err(|e| OpenError::Unusable {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        // A committed row survives a crash of this process; NORMAL in WAL mode can lose the
        // last commits only to a power cut, like the keychain's own file.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sealed (
                entry TEXT PRIMARY KEY,
                nonce BLOB NOT NULL,
                sealed BLOB NOT NULL
            )",
        )
        .map_err(fail)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(fail)?;
        if check != "ok" {
            return Err(OpenError::Damaged {
                path: path.to_owned(),
                detail: check.lines().next().unwrap_or_default().to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            db: Mutex::new(conn),
            keychain,
            key: OnceLock::new(),
            rng: SystemRandom::new(),
        })
    }

    /// A failure of this database about `entry`.
    fn error(&self, entry: String, message: impl Into<String>) -> StoreError {
        StoreError {
            backing: Backing::Database {
                path: self.path.clone(),
            },
            entry,
            message: message.into(),
            too_large: false,
        }
    }

    /// SQLite's own failure (a full disk, a file made unwritable) about `entry`.
    fn db_error(&self, entry: &str, e: rusqlite::Error) -> StoreError {
        self.error(entry.to_owned(), e.to_string())
    }

    /// The key, read from the keychain (and checked against the check row), or made for an
    /// empty store when `create` (only a writer makes one: a reader of an empty store has
    /// nothing to open). The keychain's own failures stay the keychain's.
    fn key(&self, create: bool) -> Result<Option<&LessSafeKey>, StoreError> {
        if let Some(key) = self.key.get() {
            return Ok(Some(key));
        }
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = self.key.get() {
            return Ok(Some(key)); // made by another thread while we waited
        }
        let check = read_row(&db, CHECK_ENTRY).map_err(|e| self.db_error(CHECK_ENTRY, e))?;
        let stored = self.keychain.get(&SecretKey::StoreKey)?;
        let key = match (stored, check) {
            (Some(stored), Some(check)) => {
                let key = decode_key(&stored).ok_or_else(|| self.wrong_key())?;
                match open_row(&key, CHECK_ENTRY, (&check.0, &check.1)) {
                    Some(text) if text == CHECK_TEXT => key,
                    _ => return Err(self.wrong_key()),
                }
            }
            (Some(stored), None) => {
                let key = decode_key(&stored).ok_or_else(|| self.wrong_key())?;
                if !create {
                    return Ok(None);
                }
                self.seal_check(&db, &key)?;
                key
            }
            (None, Some(_)) => {
                return Err(self.error(
                    SecretKey::StoreKey.entry(),
                    "is missing from the keychain, but this database holds secrets sealed with it; restore the keychain item (nothing was changed)",
                ))
            }
            (None, None) if !create => return Ok(None),
            (None, None) => {
                if has_rows(&db).map_err(|e| self.db_error(CHECK_ENTRY, e))? {
                    return Err(self.wrong_key());
                }
                let text = new_key_text(&self.rng).ok_or_else(|| self.random_failed())?;
                self.keychain.set(&SecretKey::StoreKey, &text)?;
                // Read back: the keychain must really hold it before anything is sealed.
                let again = self.keychain.get(&SecretKey::StoreKey)?;
                let key = again
                    .as_ref()
                    .and_then(decode_key)
                    .ok_or_else(|| {
                        StoreError::keychain(
                            SecretKey::StoreKey.entry(),
                            "did not keep the new store key",
                        )
                    })?;
                self.seal_check(&db, &key)?;
                key
            }
        };
        Ok(Some(self.key.get_or_init(|| key)))
    }

    fn seal_check(&self, db: &Connection, key: &LessSafeKey) -> Result<(), StoreError> {
        let (nonce, sealed) = self.seal(key, CHECK_ENTRY, CHECK_TEXT)?;
        db.execute(
            "INSERT OR REPLACE INTO sealed (entry, nonce, sealed) VALUES (?1, ?2, ?3)",
            params![CHECK_ENTRY, nonce, sealed],
        )
        .map_err(|e| self.db_error(CHECK_ENTRY, e))?;
        Ok(())
    }

    fn seal(
        &self,
        key: &LessSafeKey,
        entry: &str,
        text: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        seal_text(&self.rng, key, entry, text).map_err(|what| self.error(entry.to_owned(), what))
    }

    fn wrong_key(&self) -> StoreError {
        self.error(
            SecretKey::StoreKey.entry(),
            "does not open this database (a different key, or a different database); nothing was changed",
        )
    }

    fn random_failed(&self) -> StoreError {
        self.error(
            SecretKey::StoreKey.entry(),
            "the system's random number generator failed",
        )
    }
}

impl SecretStore for SealedStore {
    fn backing(&self, _key: &SecretKey) -> Backing {
        Backing::Database {
            path: self.path.clone(),
        }
    }

    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        let entry = key.entry();
        // An absent row needs no key: a first start reads ten thousand absent sets without
        // asking the keychain (a D-Bus round trip each) for a key that does not exist yet.
        let row = {
            let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
            read_row(&db, &entry).map_err(|e| self.db_error(&entry, e))?
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let Some(aead) = self.key(false)? else {
            return Err(self.wrong_key());
        };
        open_row(aead, &entry, (&row.0, &row.1))
            .map(|text| Some(Secret::new(text)))
            .ok_or_else(|| {
                self.error(
                    entry,
                    "does not open with the store key: the row is damaged",
                )
            })
    }

    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        let aead = self.key(true)?.expect("made when absent");
        let entry = key.entry();
        let (nonce, sealed) = self.seal(aead, &entry, value.expose())?;
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        db.execute(
            "INSERT OR REPLACE INTO sealed (entry, nonce, sealed) VALUES (?1, ?2, ?3)",
            params![entry, nonce, sealed],
        )
        .map_err(|e| self.db_error(&entry, e))?;
        Ok(())
    }

    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        // Deleting needs no key, but a store whose key is wrong changes nothing at all.
        self.key(false)?;
        let (db, entry) = (
            self.db.lock().unwrap_or_else(|e| e.into_inner()),
            key.entry(),
        );
        db.execute("DELETE FROM sealed WHERE entry = ?1", params![entry])
            .map_err(|e| self.db_error(&entry, e))?;
        Ok(())
    }
}

/// Which items go where under `[store] kind = "database"`: an account's (see [`Scope`]) in
/// the sealed database, this machine's in the keychain.
pub struct Routed {
    pub sealed: Arc<SealedStore>,
    pub keychain: Arc<dyn SecretStore>,
}

impl Routed {
    fn pick(&self, key: &SecretKey) -> &dyn SecretStore {
        match key.scope() {
            Scope::Account => &*self.sealed,
            Scope::Machine => &*self.keychain,
        }
    }
}

impl SecretStore for Routed {
    fn backing(&self, key: &SecretKey) -> Backing {
        self.pick(key).backing(key)
    }
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        self.pick(key).get(key)
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        self.pick(key).set(key, value)
    }
    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        self.pick(key).delete(key)
    }
}

/// Seals `text` under `entry` (its associated data) with a fresh random nonce. The error
/// says what failed, never with the text.
pub(crate) fn seal_text(
    rng: &SystemRandom,
    key: &LessSafeKey,
    entry: &str,
    text: &str,
) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    seal_bound(rng, key, entry.as_bytes(), text)
}

/// Seals `text` with `aad` bound to it and a fresh random nonce: (nonce, sealed text and
/// tag). The error says what failed, never with the text.
pub(crate) fn seal_bound(
    rng: &SystemRandom,
    key: &LessSafeKey,
    aad: &[u8],
    text: &str,
) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .map_err(|_| "the system's random number generator failed")?;
    let mut sealed = text.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut sealed,
    )
    .map_err(|_| "could not be sealed")?;
    Ok((nonce.to_vec(), sealed))
}

/// A new random store key, as the text `TOKENWARDEN_STORE_KEY`, key files and the
/// keychain item hold (base64 of 32 bytes).
pub fn new_key_text(rng: &SystemRandom) -> Option<Secret> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes).ok()?;
    let text = Secret::new(base64::engine::general_purpose::STANDARD.encode(bytes));
    zeroize::Zeroize::zeroize(&mut bytes);
    Some(text)
}

fn read_row(db: &Connection, entry: &str) -> rusqlite::Result<Option<(Vec<u8>, Vec<u8>)>> {
    db.query_row(
        "SELECT nonce, sealed FROM sealed WHERE entry = ?1",
        params![entry],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

fn has_rows(db: &Connection) -> rusqlite::Result<bool> {
    db.query_row("SELECT EXISTS (SELECT 1 FROM sealed)", [], |row| row.get(0))
}

pub(crate) fn open_row(key: &LessSafeKey, entry: &str, row: (&[u8], &[u8])) -> Option<String> {
    open_bound(key, entry.as_bytes(), row)
}

/// Opens what [`seal_bound`] sealed with the same `aad`; `None` for anything else.
pub(crate) fn open_bound(
    key: &LessSafeKey,
    aad: &[u8],
    (nonce, sealed): (&[u8], &[u8]),
) -> Option<String> {
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = sealed.to_vec();
    let text = key.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
    let text = String::from_utf8(text.to_vec()).ok();
    zeroize::Zeroize::zeroize(&mut buf);
    text
}

pub(crate) fn decode_key(text: &Secret) -> Option<LessSafeKey> {
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(text.expose())
        .ok()?;
    let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).ok();
    zeroize::Zeroize::zeroize(&mut bytes);
    key.map(LessSafeKey::new)
}

#[cfg(test)]
mod tests;
