//! The entries the fleet's store keeps in Redis: a read answers with the fence an entry was
//! written with; a write carries the fence it is given, which decides in Redis whether it
//! may replace what is stored (see `fences` and `scripts`), and is published to the other
//! hosts.

use super::scripts::{Mode, WRITE};
use super::seal::{self, Opened};
use super::store::FleetStore;
use super::{listen, FleetError};
use crate::engine::secret::Secret;
use crate::engine::store::item::{Fence, Found, SecretKey};

impl FleetStore {
    /// What is stored under `key`: `None` when nothing at all is (never stored, or lost by
    /// Redis: a deletion leaves a sealed deletion instead).
    pub(super) fn read_entry(&self, key: &SecretKey) -> Result<Option<Found>, FleetError> {
        let (link, entry) = (&self.link, key.entry());
        let redis_key = link.secret_key(&entry);
        let (blob, fence): (Option<String>, Option<u64>) = link.call(|c| {
            redis::cmd("HMGET")
                .arg(&redis_key)
                .arg("blob")
                .arg("fence")
                .query(c)
        })?;
        let Some(blob) = blob else {
            return Ok(None);
        };
        let place = self.place(&entry, fence.unwrap_or(0));
        match seal::open(&self.key, place, &blob) {
            Some(Opened::Bound(value)) => Ok(Some(Found {
                value,
                fence: Some(place.fence),
            })),
            Some(Opened::Unfenced(value)) => {
                // Every read of it says so until it is written again (a client secret may
                // stay like this for good): not worth more than a debug line each time.
                tracing::debug!(entry = %entry, "read an entry sealed by an older Tokenwarden (no fence or namespace in its seal) as a migration; it is sealed anew at its next write");
                Ok(Some(Found { value, fence: None }))
            }
            None => Err(FleetError::Unopened {
                url: link.settings.url.clone(),
                entry,
            }),
        }
    }

    /// Writes `value` (`None`: its deletion) carrying `fence`; `false` when refused.
    pub(super) fn write_entry(
        &self,
        key: &SecretKey,
        value: Option<&Secret>,
        fence: Fence,
    ) -> Result<bool, FleetError> {
        let (fence, mode) = match fence {
            // Client secrets carry no fence: the last one written wins.
            Fence::Unfenced => (0, Mode::Lease),
            Fence::Leased(fence) => (fence, Mode::Lease),
            Fence::Restore(fence) => (fence, Mode::Restore),
        };
        self.write_blob(&key.entry(), fence, mode, value)
    }

    pub(super) fn write_blob(
        &self,
        entry: &str,
        fence: u64,
        mode: Mode,
        value: Option<&Secret>,
    ) -> Result<bool, FleetError> {
        let link = &self.link;
        let blob = self.seal(self.place(entry, fence), value)?;
        let written: i64 = link.call(|c| {
            WRITE
                .key(link.secret_key(entry))
                .key(link.channel())
                .arg(fence)
                .arg(&blob)
                .arg(listen::message(entry, &link.me))
                .arg(mode.arg())
                .invoke(c)
        })?;
        Ok(written == 1)
    }
}
