//! The token journal. A provider's answer is durable here (sealed, appended, fdatasync'd)
//! within a few milliseconds of its arrival, before the keychain write that takes tens of
//! milliseconds to seconds; a process killed in between comes back with the rotated refresh
//! token instead of a spent one (DESIGN.md, invariants).
//! * `mod`     the journal: its key, opening (read, compact), writing an entry, dropping
//!   entries once the keychain holds their set (or the set was deleted)
//! * `file`    records on disk: framing, 0600 without following symlinks, fsync, rename
//! * `seq`     sequence numbers that order a journal entry against the keychain's set
//! * `replay`  at start, an entry newer than the stored set becomes its account's unsaved set
//!
//! One file per keychain service in the data dir (`tokenwarden.journal`). Each record is sealed (ChaCha20-Poly1305,
//! `sealed`'s functions) under the key `journal:key`, which lives in the keychain, is read
//! once when the engine opens (made there on first use) and held in memory as a [`Secret`].
//! A record holds the account, its sequence number and the keychain item's exact JSON.
//! Only the keychain store writes entries: the database store is itself a local fsync'd
//! file, and a fleet's set is fenced in Redis, where replaying an old answer could undo
//! another host's refresh. A damaged or undecryptable journal is moved aside with one
//! message and never stops the engine.

mod file;
pub(crate) mod replay;
pub mod seq;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::engine::names::AccountName;
use crate::engine::secret::Secret;
use crate::engine::store::item::{SecretKey, SecretStore, StoreError};
use crate::engine::store::sealed::{decode_key, new_key_text, open_row, seal_text};

/// Bound into every record (associated data): these bytes are a journal record, version 1.
const AAD: &str = "tokenwarden journal v1";
/// Past this size, a file holding mostly saved entries is rewritten with the live ones.
const COMPACT_AT: u64 = 256 * 1024;

/// The journal of keychain service `service` (its lock's file-name stem): one per service,
/// since each service has its own key and its own refresher.
pub fn journal_path(data_dir: &Path, service: &str) -> PathBuf {
    data_dir.join(format!("{service}.journal"))
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("token journal {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("token journal: {0}")]
    Key(#[from] StoreError),
    #[error("token journal: {0}")]
    Seal(&'static str),
}

/// An account's newest set in the journal, as read at start.
pub struct Entry {
    pub account: AccountName,
    pub seq: u64,
    /// The keychain item's JSON.
    pub stored: Secret,
}

/// A record's plaintext: an entry, or (no account) a mark that carries the highest
/// sequence number when the file is emptied.
#[derive(Serialize)]
struct PlainOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    set: Option<&'a str>,
}

#[derive(Deserialize)]
struct PlainIn {
    #[serde(default)]
    account: Option<AccountName>,
    seq: u64,
    #[serde(default)]
    set: Option<String>,
}

/// The engine's journal once it has been opened, or `None` when it is off. It is opened after
/// the engine has started (its key is in the keychain, which may wait for an unlock prompt);
/// refreshes, and deletions of token sets, wait until it has settled.
pub(in crate::engine) type Settling =
    std::sync::Arc<tokio::sync::SetOnce<Option<std::sync::Arc<Journal>>>>;

pub struct Journal {
    path: PathBuf,
    key: Secret,
    rng: SystemRandom,
    /// Entries are written (the keychain store), not only replayed.
    writes: bool,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    len: u64,
    /// The newest record of each account whose set is not known to be in the keychain yet.
    live: HashMap<AccountName, (u64, Vec<u8>)>,
}

impl Journal {
    /// At start: reads the key (making it on first use), reads the file, moves it aside if
    /// damaged, and rewrites it with the newest entry per account (unless it holds none),
    /// which it returns for replay. `writes`: this store journals answers; if not, a journal is opened only to
    /// replay what an earlier run left (`None` when there is none).
    pub fn open(
        path: &Path,
        keychain: &dyn SecretStore,
        writes: bool,
    ) -> Result<Option<(Self, Vec<Entry>)>, JournalError> {
        let path = path.to_owned();
        crate::engine::system::private::remove_temporaries(&path);
        let bytes = file::read(&path).map_err(|e| io_error(&path, e))?;
        let bytes = bytes.unwrap_or_default();
        if !writes && bytes.is_empty() {
            return Ok(None);
        }
        let stored = keychain.get(&SecretKey::JournalKey)?;
        let key = stored.filter(|k| decode_key(k).is_some());
        let mut live: HashMap<AccountName, (u64, Vec<u8>, Secret)> = HashMap::new();
        let (mut highest, mut damaged, parsed) = (0, 0, file::parse(&bytes));
        for record in &parsed.records {
            let Some(plain) = key.as_ref().and_then(|k| open(k, record)) else {
                damaged += 1;
                continue;
            };
            highest = highest.max(plain.seq);
            let (Some(account), Some(set)) = (plain.account, plain.set) else {
                continue; // a mark
            };
            if live.get(&account).is_none_or(|(seq, ..)| *seq < plain.seq) {
                let framed = file::frame(record.nonce, record.sealed);
                live.insert(account, (plain.seq, framed, Secret::new(set)));
            }
        }
        if damaged > 0 || parsed.broken {
            let total = parsed.records.len() + usize::from(parsed.broken);
            let aside = crate::engine::system::private::move_aside(&path, &[])
                .map_err(|e| io_error(&path, e))?;
            tracing::error!(
                journal = %path.display(),
                moved_to = %aside.display(),
                "the token journal is damaged or sealed with another key ({damaged} of {total} records do not open); moved aside. The {} sets that opened are replayed; one only an unreadable record held is lost, and its account says so when its next refresh is refused",
                live.len()
            );
        } else if parsed.torn {
            // An append cut short by a crash before its fsync returned: nothing relied on it.
            tracing::info!(journal = %path.display(), "the token journal ends in a record cut short by a crash; it is dropped");
        }
        let key = match key {
            Some(key) => key,
            // Without a key nothing opened, so nothing is lost by making a new one.
            None if writes => make_key(keychain)?,
            None => return Ok(None),
        };
        seq::observe(highest);
        let live_count = live.len();
        let rng = SystemRandom::new();
        let mut contents = mark(&key, &rng)?;
        let mut entries = Vec::new();
        let mut kept = HashMap::new();
        for (account, (seq, framed, stored)) in live {
            contents.extend_from_slice(&framed);
            kept.insert(account.clone(), (seq, framed));
            entries.push(Entry {
                account,
                seq,
                stored,
            });
        }
        // A file of marks alone (the usual state) is kept as it is: no rewrite at each start.
        let unchanged = live_count == 0 && damaged == 0 && !parsed.broken && !parsed.torn;
        let (file, contents) = if unchanged && !bytes.is_empty() {
            (file::open_append(&path), bytes)
        } else {
            (file::replace(&path, &contents), contents)
        };
        let file = file.map_err(|e| io_error(&path, e))?;
        let journal = Self {
            path,
            key,
            rng,
            writes,
            inner: Mutex::new(Inner {
                file,
                len: contents.len() as u64,
                live: kept,
            }),
        };
        entries.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(Some((journal, entries)))
    }

    /// Whether answers are journaled (the keychain store), not only replayed.
    pub fn writes(&self) -> bool {
        self.writes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `account`'s set (the keychain item's JSON, sequence `seq`) and waits until
    /// it is on disk. Blocking: call it off the async workers.
    pub fn write(
        &self,
        account: &AccountName,
        seq: u64,
        stored: &Secret,
    ) -> Result<(), JournalError> {
        let record = self.seal(&PlainOut {
            account: Some(account.as_str()),
            seq,
            set: Some(stored.expose()),
        })?;
        let mut inner = self.lock();
        let appended = inner
            .file
            .write_all(&record)
            .and_then(|()| inner.file.sync_data());
        if let Err(e) = appended {
            // A partial record would swallow the next one: cut it off.
            let len = inner.len;
            let _ = inner.file.set_len(len);
            return Err(io_error(&self.path, e));
        }
        inner.len += record.len() as u64;
        if inner.live.get(account).is_none_or(|(live, _)| *live < seq) {
            inner.live.insert(account.clone(), (seq, record));
        }
        // A keychain that stays away saves nothing, so `saved` never shortens the file:
        // superseded entries are dropped here once they are most of it.
        if inner.len > COMPACT_AT {
            let live: u64 = inner.live.values().map(|(_, r)| r.len() as u64).sum();
            if inner.len > 2 * live + COMPACT_AT / 2 {
                if let Err(e) = self.compact(&mut inner) {
                    tracing::warn!(error = %e, "cannot shorten the token journal; it is rewritten at the next start");
                }
            }
        }
        Ok(())
    }

    /// The keychain holds `account`'s set `seq` (or a newer one): its entry is no longer
    /// needed. Not fsync'd: a saved entry that comes back after a crash is older than the
    /// keychain's set, and replay drops it. Blocking.
    pub fn saved(&self, account: &AccountName, seq: u64) {
        let mut inner = self.lock();
        if inner.live.get(account).is_none_or(|(live, _)| *live > seq) {
            return;
        }
        inner.live.remove(account);
        let tidy = if inner.live.is_empty() {
            self.empty(&mut inner, false)
        } else if inner.len > COMPACT_AT {
            self.compact(&mut inner)
        } else {
            Ok(())
        };
        if let Err(e) = tidy {
            tracing::warn!(error = %e, "cannot shorten the token journal; it is rewritten at the next start");
        }
    }

    /// `account`'s set was deleted (disconnect): its entry must never come back, so this
    /// one is on disk before it returns. Blocking.
    pub fn forget(&self, account: &AccountName) {
        let mut inner = self.lock();
        if inner.live.remove(account).is_none() {
            return;
        }
        let gone = if inner.live.is_empty() {
            self.empty(&mut inner, true)
        } else {
            self.compact(&mut inner)
        };
        if let Err(e) = gone {
            tracing::warn!(account = %account, error = %e, "cannot drop the account's entry from the token journal");
        }
    }

    /// Empties the file but for a mark holding the highest sequence number so far.
    fn empty(&self, inner: &mut Inner, durable: bool) -> Result<(), JournalError> {
        let mark = mark(&self.key, &self.rng)?;
        let io = |e| io_error(&self.path, e);
        inner.file.set_len(0).map_err(io)?;
        inner.len = 0;
        inner.file.write_all(&mark).map_err(io)?;
        inner.len = mark.len() as u64;
        if durable {
            inner.file.sync_data().map_err(io)?;
        }
        Ok(())
    }

    /// Rewrites the file with a mark and the live entries (renamed into place, fsync'd).
    fn compact(&self, inner: &mut Inner) -> Result<(), JournalError> {
        let mut contents = mark(&self.key, &self.rng)?;
        for (_, record) in inner.live.values() {
            contents.extend_from_slice(record);
        }
        inner.file = file::replace(&self.path, &contents).map_err(|e| io_error(&self.path, e))?;
        inner.len = contents.len() as u64;
        Ok(())
    }

    fn seal(&self, plain: &PlainOut<'_>) -> Result<Vec<u8>, JournalError> {
        seal(&self.key, &self.rng, plain)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One record: `plain` sealed under the journal key, framed.
fn seal(key: &Secret, rng: &SystemRandom, plain: &PlainOut<'_>) -> Result<Vec<u8>, JournalError> {
    let text = Zeroizing::new(
        serde_json::to_string(plain).map_err(|_| JournalError::Seal("cannot encode a record"))?,
    );
    let key = decode_key(key).ok_or(JournalError::Seal("the key does not decode"))?;
    let (nonce, sealed) =
        seal_text(rng, &key, AAD, &text).map_err(|_| JournalError::Seal("cannot seal a record"))?;
    Ok(file::frame(&nonce, &sealed))
}

/// A mark: the highest sequence number so far, kept when the entries go.
fn mark(key: &Secret, rng: &SystemRandom) -> Result<Vec<u8>, JournalError> {
    seal(
        key,
        rng,
        &PlainOut {
            account: None,
            seq: seq::next(),
            set: None,
        },
    )
}

fn open(key: &Secret, record: &file::Sealed<'_>) -> Option<PlainIn> {
    let key = decode_key(key)?;
    let text = Zeroizing::new(open_row(&key, AAD, (record.nonce, record.sealed))?);
    // The error is dropped on purpose: serde's message could quote the secret.
    serde_json::from_str(&text).ok()
}

/// A new journal key in the keychain, read back before anything is sealed with it.
fn make_key(keychain: &dyn SecretStore) -> Result<Secret, JournalError> {
    let text = new_key_text(&SystemRandom::new()).ok_or(JournalError::Seal(
        "the system's random number generator failed",
    ))?;
    keychain.set(&SecretKey::JournalKey, &text)?;
    match keychain.get(&SecretKey::JournalKey)? {
        Some(again) if again.same_as(text.expose()) => Ok(again),
        _ => Err(JournalError::Key(StoreError::keychain(
            SecretKey::JournalKey.entry(),
            "did not keep the new journal key",
        ))),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}
