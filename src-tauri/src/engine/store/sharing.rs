//! Whether this host shares its accounts' secrets with a fleet, and what that changes for
//! the store's reads and writes of them: a read is judged against the fences this host
//! knows (a shared store can lose what it held, or go back to older sets), and a token
//! set's write carries the fence the coordinator chooses. Alone, none of it applies.

use std::sync::Arc;

use super::fleet::{Fleet, FleetError, Lease};
use super::item::{Fence, Found, Scope, SecretKey, StoreError};
use crate::engine::secret::Secret;

#[derive(Clone)]
pub enum Sharing {
    /// The store is this host's alone (keychain, database).
    Alone,
    /// The store is a fleet's (`[store] kind = "redis"`).
    Fleet(Arc<Fleet>),
}

/// What a read found, judged.
pub(super) enum Judged {
    /// What the store holds (`None`: nothing).
    Value(Option<Secret>),
    /// The shared store lost it, or holds an older token set than this host: this host's
    /// copy is the one to keep, and to store again.
    Behind,
}

impl Sharing {
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        match self {
            Self::Alone => None,
            Self::Fleet(fleet) => Some(fleet),
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Fleet(_))
    }

    /// This host's name in the fleet, for the history it writes.
    pub fn host(&self) -> Option<&str> {
        self.fleet().map(|f| f.coordinator.host())
    }

    /// The shared store's URL, and whether this host hears the others right now.
    pub fn subscription(&self) -> Option<(&str, bool)> {
        self.fleet()
            .map(|f| (f.coordinator.url(), f.coordinator.heard_lately()))
    }

    /// Ends hearing the other hosts (nothing to end alone).
    pub fn stop_listening(&self) {
        if let Self::Fleet(fleet) = self {
            fleet.coordinator.stop_listening();
        }
    }

    /// Counts a WeChat fetch in the fleet's count for `allowance` on `day`; `None` alone.
    pub async fn count_fetch(&self, allowance: &str, day: &str) -> Option<Result<u32, FleetError>> {
        Some(self.fleet()?.coordinator.count_fetch(allowance, day).await)
    }

    /// The fleet's count of `allowance` fetches on `day`; `None` alone.
    pub async fn fetches(&self, allowance: &str, day: &str) -> Option<Result<u32, FleetError>> {
        Some(self.fleet()?.coordinator.fetches(allowance, day).await)
    }

    /// Judges what a read of `key` found. Only an account's items are shared, and only a
    /// token set has fences to compare.
    pub(super) fn judge(&self, key: &SecretKey, found: Option<Found>) -> Judged {
        let Self::Fleet(fleet) = self else {
            return Judged::Value(found.and_then(|f| f.value));
        };
        if key.scope() == Scope::Machine {
            return Judged::Value(found.and_then(|f| f.value));
        }
        let Some(found) = found else {
            return Judged::Behind; // never stored, or lost with a Redis that restarted empty
        };
        match key {
            SecretKey::Tokens(account) if !fleet.coordinator.adopts(account, found.fence) => {
                Judged::Behind
            }
            _ => Judged::Value(found.value),
        }
    }

    /// The fence a write of `key` carries, with the lease taken for it if it needs one of
    /// its own (to be released once written).
    pub(super) async fn fence_for(
        &self,
        key: &SecretKey,
    ) -> Result<(Fence, Option<Lease>), StoreError> {
        match (self, key) {
            (Self::Fleet(fleet), SecretKey::Tokens(account)) => fleet
                .coordinator
                .fence_for(account)
                .await
                .map_err(|e| e.about(fleet.coordinator.url(), key.entry())),
            _ => Ok((Fence::Unfenced, None)),
        }
    }

    /// A write of `key` carrying `fence` did `written`.
    pub(super) fn wrote(&self, key: &SecretKey, fence: Fence, written: &Result<bool, StoreError>) {
        if let (Self::Fleet(fleet), SecretKey::Tokens(account)) = (self, key) {
            fleet.coordinator.wrote(account, fence, written);
        }
    }

    /// The next write of `key` replaces whatever is stored, newer or not (a deletion, a new
    /// consent): it takes a fence of its own.
    pub(super) fn forget(&self, key: &SecretKey) {
        if let (Self::Fleet(fleet), SecretKey::Tokens(account)) = (self, key) {
            fleet.coordinator.forget(account);
        }
    }
}
