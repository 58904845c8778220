//! The entries the fleet keeps in Redis, read and written by one host: a read decides, with
//! what this host knows of the account's fences, whether a stored set is adopted or older
//! than the one it holds; a write carries the fence that decides whether it may replace what
//! is stored (see `fences`), and is published to the other hosts.

use super::fences::{Verdict, WriteAs, Written};
use super::scripts::{Mode, WRITE};
use super::seal::{self, Opened};
use super::{listen, Fleet, FleetError};
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;
use crate::engine::store::item::SecretKey;
use std::time::{Duration, Instant};

impl Fleet {
    /// Reads a stored entry: `None` when nothing is stored, deleted, or (token sets) older
    /// than the one this host holds, which [`Self::behind`] then tells apart.
    pub(super) fn get(&self, key: &SecretKey) -> Result<Option<Secret>, FleetError> {
        let entry = key.entry();
        let redis_key = self.secret_key(&entry);
        let (blob, fence): (Option<String>, Option<u64>) = self.call(|c| {
            redis::cmd("HMGET")
                .arg(&redis_key)
                .arg("blob")
                .arg("fence")
                .query(c)
        })?;
        let Some(blob) = blob else {
            self.mark(&entry, Some(Behind::Lost));
            return Ok(None);
        };
        let place = self.place(&entry, fence.unwrap_or(0));
        let (text, fence) = match seal::open(&self.key, place, &blob) {
            Some(Opened::Bound(text)) => (text, Some(place.fence)),
            Some(Opened::Unfenced(text)) => {
                // Every read of it says so until it is written again (a client secret may
                // stay like this for good): not worth more than a debug line each time.
                tracing::debug!(entry = %entry, "read an entry sealed by an older Tokenwarden (no fence or namespace in its seal) as a migration; it is sealed anew at its next write");
                (text, None)
            }
            None => {
                return Err(FleetError::Unopened {
                    url: self.settings.url.clone(),
                    entry,
                })
            }
        };
        let SecretKey::Tokens(account) = key else {
            self.mark(&entry, None);
            return Ok(text);
        };
        let verdict = self.fences().read(account, fence);
        match verdict {
            Verdict::Adopt => {
                self.mark(&entry, None);
                Ok(text)
            }
            Verdict::Older { stored, held } => {
                tracing::warn!(account = %account, stored_fence = stored, held_fence = held, "the shared store holds an older token set than this host (Redis restarted from a snapshot, a replica or a backup?); keeping this host's and storing it again");
                self.mark(&entry, Some(Behind::Older));
                Ok(None)
            }
        }
    }

    fn mark(&self, entry: &str, behind: Option<Behind>) {
        let mut marks = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        match behind {
            Some(b) => marks.insert(entry.to_owned(), b),
            None => marks.remove(entry),
        };
    }

    fn behind_as(&self, key: &SecretKey) -> Option<Behind> {
        let marks = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        marks.get(&key.entry()).copied()
    }

    /// Whether the last read of `key` found no entry at all: never stored, or lost by Redis
    /// (a deletion leaves a sealed deletion instead).
    pub fn lost(&self, key: &SecretKey) -> bool {
        self.behind_as(key) == Some(Behind::Lost)
    }

    /// Whether this host's copy of `key` is to be stored again: the last read found nothing
    /// ([`Self::lost`]), or a token set older than the one this host holds.
    pub fn behind(&self, key: &SecretKey) -> bool {
        self.behind_as(key).is_some()
    }

    /// Writes an account's token set (`None`: its deletion) with the fence [`Fences`] says:
    /// its lease's, the held set's as a restore, or a new lease's, waiting while another
    /// host refreshes the account. `false` when a newer set was there.
    pub(super) fn write_tokens(
        &self,
        account: &AccountName,
        value: Option<&Secret>,
    ) -> Result<bool, FleetError> {
        let write_as = self.fences().write_as(account);
        match write_as {
            WriteAs::Leased(fence) => self.write_fenced(account, fence, Mode::Lease, value),
            WriteAs::Restore(fence) => self.write_fenced(account, fence, Mode::Restore, value),
            WriteAs::NewLease => {
                let give_up = Instant::now() + self.lease_time() * 2;
                let fence = loop {
                    if let Some(fence) = self.acquire(account)? {
                        break fence;
                    }
                    if Instant::now() > give_up {
                        return Err(FleetError::Busy {
                            account: account.clone(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                let written = self.write_fenced(account, fence, Mode::Lease, value);
                let _ = self.release(account, fence);
                written
            }
        }
    }

    fn write_fenced(
        &self,
        account: &AccountName,
        fence: u64,
        mode: Mode,
        value: Option<&Secret>,
    ) -> Result<bool, FleetError> {
        let key = SecretKey::Tokens(account.clone());
        let written = self.write_blob(&key.entry(), fence, mode, value);
        let outcome = match &written {
            Ok(true) => Written::Stored,
            Ok(false) => Written::Refused,
            Err(_) => Written::Failed,
        };
        self.fences().wrote(account, fence, outcome);
        if outcome == Written::Stored {
            self.mark(&key.entry(), None);
        }
        written
    }

    /// Writes a client secret (`None`: its deletion). They carry no fence: the last one
    /// written wins.
    pub(super) fn write_unfenced(
        &self,
        key: &SecretKey,
        value: Option<&Secret>,
    ) -> Result<(), FleetError> {
        self.write_blob(&key.entry(), 0, Mode::Lease, value)
            .map(|_| ())
    }

    pub(super) fn write_blob(
        &self,
        entry: &str,
        fence: u64,
        mode: Mode,
        value: Option<&Secret>,
    ) -> Result<bool, FleetError> {
        let blob = self.seal(self.place(entry, fence), value)?;
        let written: i64 = self.call(|c| {
            WRITE
                .key(self.secret_key(entry))
                .key(self.channel())
                .arg(fence)
                .arg(&blob)
                .arg(listen::message(entry, &self.me))
                .arg(mode.arg())
                .invoke(c)
        })?;
        Ok(written == 1)
    }
}

/// Why this host's copy of an entry is to be stored again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Behind {
    /// Nothing at all is stored (Redis restarted empty, or was flushed).
    Lost,
    /// A token set older than the one this host holds.
    Older,
}
