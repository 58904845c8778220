//! What one host knows of each account's fences, and what follows from it: the fence a write
//! carries and whether it may replace what is stored, whether a stored set is older than the
//! one this host holds, and the floor of this host's next lease. Pure bookkeeping: the Lua
//! scripts enforce the same rules in Redis, where several hosts meet.
//!
//! Fences only go up, but Redis can go back: restarted from a snapshot, a lagging replica
//! promoted, a backup restored. Then its counter and its sets are older than what the hosts
//! saw, and only the hosts remember better. So a host keeps, per account:
//! * `seen`: the highest fence it has seen anywhere; its next lease is taken above it, so
//!   that a fence is never handed out twice, even by a Redis that forgot it;
//! * `held`: the fence of the set it holds; a stored set below it is older and never adopted;
//! * `lease`: the fence of its own lease, which new sets fetched under it are written with,
//!   also after the lease ended if their write failed (a retry), but not after that.

use std::collections::HashMap;

use crate::engine::names::AccountName;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Known {
    seen: u64,
    held: Option<u64>,
    lease: Option<Lease>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease {
    fence: u64,
    /// Still this host's (not released yet).
    running: bool,
    /// A write under it failed, and the set is still to be stored (under this fence).
    unsaved: bool,
}

/// How a token set (or its deletion) from this host is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteAs {
    /// Fetched under this host's lease with this fence: it replaces anything not newer.
    Leased(u64),
    /// This host's copy of a set it holds, written with that set's fence, stored again after
    /// Redis lost it or went back to an older one: it goes in only where nothing is stored or
    /// something strictly older is, so it can never replace a set fetched since.
    Restore(u64),
    /// This host knows no fence for it (a new consent, a deletion): it takes a lease first.
    NewLease,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Written {
    Stored,
    /// A newer set was there (or, for a restore, one as new).
    Refused,
    /// Redis could not be asked.
    Failed,
}

/// Whether a stored set may replace the one this host holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Adopt,
    /// Older than the set this host holds: it keeps its own.
    Older {
        stored: u64,
        held: u64,
    },
}

#[derive(Debug, Default)]
pub(super) struct Fences(HashMap<AccountName, Known>);

impl Fences {
    fn known(&mut self, account: &AccountName) -> &mut Known {
        self.0.entry(account.clone()).or_default()
    }

    /// The fence this host's next lease must be above.
    pub fn floor(&self, account: &AccountName) -> u64 {
        self.0.get(account).map_or(0, |k| k.seen)
    }

    /// This host took a lease with `fence`.
    pub fn leased(&mut self, account: &AccountName, fence: u64) {
        let known = self.known(account);
        known.seen = known.seen.max(fence);
        known.lease = Some(Lease {
            fence,
            running: true,
            unsaved: false,
        });
    }

    /// This host's lease with `fence` ended. A set fetched under it and not stored yet keeps
    /// its fence for the retries; otherwise the host writes only its held set from now on.
    pub fn released(&mut self, account: &AccountName, fence: u64) {
        let known = self.known(account);
        if let Some(lease) = known.lease.as_mut().filter(|l| l.fence == fence) {
            lease.running = false;
            if !lease.unsaved {
                known.lease = None;
            }
        }
    }

    pub fn write_as(&self, account: &AccountName) -> WriteAs {
        match self.0.get(account) {
            Some(Known {
                lease: Some(lease), ..
            }) => WriteAs::Leased(lease.fence),
            Some(Known {
                held: Some(held), ..
            }) => WriteAs::Restore(*held),
            _ => WriteAs::NewLease,
        }
    }

    /// A write with `fence` did `written`.
    pub fn wrote(&mut self, account: &AccountName, fence: u64, written: Written) {
        let known = self.known(account);
        if written == Written::Stored {
            known.held = Some(fence);
            known.seen = known.seen.max(fence);
        }
        if let Some(lease) = &mut known.lease {
            if lease.fence == fence {
                // Refused: a newer set is stored, and this one is not to be retried.
                lease.unsaved = written == Written::Failed;
                if !lease.running && !lease.unsaved {
                    known.lease = None;
                }
            }
        }
    }

    /// A stored set (or deletion) was read, written with `stored` (`None`: written before
    /// fences were sealed into blobs, so its fence is not believed and it counts as the
    /// oldest). Adopted unless older than the set this host holds.
    pub fn read(&mut self, account: &AccountName, stored: Option<u64>) -> Verdict {
        let known = self.known(account);
        let fence = stored.unwrap_or(0);
        known.seen = known.seen.max(fence);
        match known.held {
            Some(held) if held > fence => Verdict::Older {
                stored: fence,
                held,
            },
            _ => {
                known.held = Some(fence);
                Verdict::Adopt
            }
        }
    }

    /// A new consent or a deletion replaces whatever is stored, newer or not: it is written
    /// under a lease of its own (still above every fence seen).
    pub fn forget(&mut self, account: &AccountName) {
        let known = self.known(account);
        known.held = None;
        known.lease = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb() -> AccountName {
        "fb".parse().unwrap()
    }

    #[test]
    fn a_set_older_than_the_one_held_is_never_adopted_and_an_equal_or_newer_one_is() {
        let mut f = Fences::default();
        assert_eq!(f.read(&fb(), Some(3)), Verdict::Adopt, "nothing held yet");
        assert_eq!(f.read(&fb(), Some(5)), Verdict::Adopt);
        assert_eq!(f.read(&fb(), Some(5)), Verdict::Adopt, "the same set again");
        assert_eq!(
            f.read(&fb(), Some(4)),
            Verdict::Older { stored: 4, held: 5 }
        );
        assert_eq!(
            f.read(&fb(), None),
            Verdict::Older { stored: 0, held: 5 },
            "an unfenced (old format) blob counts as the oldest"
        );
        assert_eq!(f.write_as(&fb()), WriteAs::Restore(5), "still holds 5");
    }

    #[test]
    fn a_new_lease_is_above_every_fence_seen_even_one_redis_forgot() {
        let mut f = Fences::default();
        f.read(&fb(), Some(7));
        f.leased(&fb(), 9);
        assert_eq!(f.floor(&fb()), 9);
        f.released(&fb(), 9);
        f.read(&fb(), Some(12));
        assert_eq!(f.floor(&fb()), 12);
        // Redis went back to fence 3: the floor stays.
        assert!(matches!(f.read(&fb(), Some(3)), Verdict::Older { .. }));
        assert_eq!(f.floor(&fb()), 12);
        f.forget(&fb());
        assert_eq!(
            f.floor(&fb()),
            12,
            "a new consent still takes a higher fence"
        );
        assert_eq!(f.write_as(&fb()), WriteAs::NewLease);
    }

    #[test]
    fn sets_fetched_under_a_lease_carry_its_fence_until_stored_and_restores_carry_the_held_one() {
        let mut f = Fences::default();
        assert_eq!(f.write_as(&fb()), WriteAs::NewLease);
        f.read(&fb(), Some(4));
        f.leased(&fb(), 6);
        assert_eq!(f.write_as(&fb()), WriteAs::Leased(6));
        // The write fails and the lease ends: the retry still carries fence 6.
        f.wrote(&fb(), 6, Written::Failed);
        f.released(&fb(), 6);
        assert_eq!(f.write_as(&fb()), WriteAs::Leased(6));
        f.wrote(&fb(), 6, Written::Stored);
        assert_eq!(f.write_as(&fb()), WriteAs::Restore(6));
        // A lease that fetched nothing leaves the held fence for restores.
        f.leased(&fb(), 8);
        f.released(&fb(), 8);
        assert_eq!(f.write_as(&fb()), WriteAs::Restore(6));
        // A refused write is not retried under its lease.
        f.leased(&fb(), 9);
        f.wrote(&fb(), 9, Written::Refused);
        f.released(&fb(), 9);
        assert_eq!(f.write_as(&fb()), WriteAs::Restore(6));
        // A release that comes after a newer lease was taken leaves that one alone.
        f.leased(&fb(), 11);
        f.released(&fb(), 9);
        assert_eq!(f.write_as(&fb()), WriteAs::Leased(11));
    }
}
