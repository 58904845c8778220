//! The accounts' live records and the queue of their deadlines, behind one lock. Every
//! change to a slot goes through [`Accounts::change`], which compares the slot's next
//! deadline before and after and queues the new one: the scheduler pops what is due from a
//! heap instead of scanning every account, so its work per wake-up follows what is due,
//! not how many accounts there are.
//!
//! The heap may hold stale entries (a deadline that moved later); popping one only costs a
//! look at that slot. `Slot::queued` remembers the earliest entry a slot has, so a slot is
//! queued again only when its deadline moves earlier than that.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::SystemTime;

use crate::engine::account::slot::{Slot, Work};
use crate::engine::history::Trigger;
use crate::engine::names::AccountName;

/// Scheduled tasks (refreshes, saves, re-reads) running at once. A start of ten thousand
/// accounts would otherwise spawn ten thousand tasks that wait for their turn at the
/// provider host or the keychain, each holding a refresh's whole state (tens of KB): what is
/// due stays in the heap until a task ends.
const MAX_RUNNING: usize = 256;

#[derive(Default)]
pub(crate) struct Accounts {
    /// Boxed: a slot is over a kilobyte, and a map keeps up to half its room empty (and
    /// twice that while it grows), which for 100,000 slots inline was tens of megabytes.
    slots: HashMap<AccountName, Box<Slot>>,
    /// Slots marked busy by `take_due` whose task has not ended.
    running: usize,
    queue: BinaryHeap<Reverse<(SystemTime, AccountName)>>,
    /// Due, but an account whose token they are fetched with has none valid yet: looked at
    /// again when any account gets a new token.
    waiting: HashSet<AccountName>,
}

impl Accounts {
    pub fn get(&self, name: &AccountName) -> Option<&Slot> {
        self.slots.get(name).map(|s| &**s)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&AccountName, &Slot)> {
        self.slots.iter().map(|(name, slot)| (name, &**slot))
    }

    pub fn contains(&self, name: &AccountName) -> bool {
        self.slots.contains_key(name)
    }

    /// Entries in the heap (stale ones included), for tests and figures.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Makes room for `more` slots at once, rather than growing step by step while a start
    /// inserts them.
    pub fn reserve(&mut self, more: usize) {
        self.slots.reserve(more);
    }

    /// Adds (or replaces) a slot. Returns whether the scheduler has something new to look at.
    pub fn insert(&mut self, name: AccountName, slot: Slot) -> bool {
        let at = slot.wake_at();
        self.slots.insert(name.clone(), Box::new(slot));
        at.is_some_and(|at| self.schedule(&name, at))
    }

    pub fn retain(&mut self, keep: impl Fn(&AccountName) -> bool) {
        let running = &mut self.running;
        self.slots.retain(|name, slot| {
            let kept = keep(name);
            if !kept && slot.busy {
                *running -= 1; // its task's end will find no slot
            }
            kept
        });
        self.waiting.retain(|name| keep(name));
        // Entries of removed accounts are skipped when they come up.
    }

    /// Changes a slot and queues its deadline if that moved. Returns `f`'s result and
    /// whether the scheduler has something new to look at; `None` for an unknown account.
    pub fn change<T>(
        &mut self,
        name: &AccountName,
        f: impl FnOnce(&mut Slot) -> T,
    ) -> Option<(T, bool)> {
        let slot = self.slots.get_mut(name)?;
        let (at, expiry, busy) = (slot.wake_at(), slot.token_expiry(), slot.busy);
        let result = f(slot);
        let (new_at, new_expiry) = (slot.wake_at(), slot.token_expiry());
        let mut woke = false;
        if busy && !slot.busy {
            self.running -= 1;
            woke = true; // room for what waits in the heap
        }
        if new_at != at {
            if let Some(at) = new_at {
                woke |= self.schedule(name, at);
            }
        }
        if new_expiry != expiry && new_expiry.is_some() && !self.waiting.is_empty() {
            for waiting in std::mem::take(&mut self.waiting) {
                woke |= self.schedule(&waiting, SystemTime::UNIX_EPOCH);
            }
        }
        Some((result, woke))
    }

    /// Queues a look at `name` at `at`, unless an entry at or before `at` is queued already.
    fn schedule(&mut self, name: &AccountName, at: SystemTime) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        if slot.queued.is_some_and(|queued| queued <= at) {
            return false;
        }
        slot.queued = Some(at);
        self.queue.push(Reverse((at, name.clone())));
        true
    }

    /// Marks what is due at `now` busy and returns it (no more than there is room for), with
    /// the time of the next deadline (`None` when full: an ending task wakes the scheduler).
    pub fn take_due(&mut self, now: SystemTime) -> (Vec<(AccountName, Work)>, Option<SystemTime>) {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.queue.peek() {
            if *at > now {
                break;
            }
            if self.running >= MAX_RUNNING {
                return (due, None);
            }
            let Some(Reverse((at, name))) = self.queue.pop() else {
                break;
            };
            let upstream_ready = match self.slots.get(&name) {
                Some(slot) => slot.account.upstream.iter().all(|up| {
                    self.slots
                        .get(up)
                        .and_then(|s| s.state.tokens())
                        .is_some_and(|t| !t.expires_at.has_passed(now))
                }),
                None => continue, // removed by a config reload
            };
            let Some(slot) = self.slots.get_mut(&name) else {
                continue;
            };
            if slot.queued == Some(at) {
                slot.queued = None;
            }
            match slot.next_work() {
                None => {}
                Some((later, _)) if later > now => {
                    self.schedule(&name, later);
                }
                Some((_, Work::Refresh(_))) if !upstream_ready => {
                    self.waiting.insert(name);
                }
                Some((_, work)) => {
                    if work == Work::Refresh(Trigger::Startup) {
                        slot.fetch_unasked = false;
                    }
                    slot.busy = true;
                    self.running += 1;
                    due.push((name, work));
                }
            }
        }
        let next = self.queue.peek().map(|Reverse((at, _))| *at);
        (due, next)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::engine::account::state::AccountState;
    use crate::engine::config::Config;
    use crate::engine::names::Deadline;

    const T0: Duration = Duration::from_secs(2_000_000_000);

    fn accounts(n: usize) -> (Accounts, Vec<AccountName>) {
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "[[account]]\nname = \"a{i}\"\nprovider = \"http\"\nurl = \"http://127.0.0.1:9/t\"\n"
            ));
        }
        let config = Config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let mut all = Accounts::default();
        let mut names = Vec::new();
        for account in &config.accounts {
            // Read from the keychain at T0 + i seconds.
            let i: u64 = account.name.as_str()[1..].parse().unwrap();
            let state = AccountState::unread(SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(i));
            let mut slot = Slot::new(Arc::clone(account), state);
            slot.fetch_unasked = false;
            all.insert(account.name.clone(), slot);
            names.push(account.name.clone());
        }
        (all, names)
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_wake_up_takes_only_what_is_due_however_many_accounts_wait() {
        let (mut all, names) = accounts(10_000);
        assert_eq!(all.queued(), 10_000);
        let (due, next) = all.take_due(at(2));
        let due: Vec<_> = due.into_iter().map(|(n, _)| n).collect();
        assert_eq!(due, names[..3].to_vec());
        assert_eq!(next, Some(at(3)));
        // Only the three due entries left the heap: the others were not looked at.
        assert_eq!(all.queued(), 9_997);
        // Busy accounts are not taken again.
        assert!(all.take_due(at(2)).0.is_empty());
    }

    #[test]
    fn a_deadline_moved_earlier_is_queued_and_one_moved_later_is_not_taken_early() {
        let (mut all, names) = accounts(3);
        // a2 moves from T0+2 to T0-1: queued again, due first.
        let (_, woke) = all
            .change(&names[2], |s| {
                s.state = AccountState::Unread {
                    attempt: 1,
                    next_try: Deadline::at(at(0) - Duration::from_secs(1)),
                    reason: String::new(),
                }
            })
            .unwrap();
        assert!(woke);
        // a0 moves from T0 to T0+100: its old entry comes up and is put back, not taken.
        all.change(&names[0], |s| {
            s.state = AccountState::Unread {
                attempt: 1,
                next_try: Deadline::at(at(100)),
                reason: String::new(),
            }
        });
        let due: Vec<_> = all.take_due(at(1)).0.into_iter().map(|(n, _)| n).collect();
        assert_eq!(due, vec![names[2].clone(), names[1].clone()]);
        let (due, next) = all.take_due(at(99));
        assert!(due.is_empty());
        assert_eq!(next, Some(at(100)));
        // A finished task makes the account due again through `change`.
        let (_, woke) = all.change(&names[1], |s| s.busy = false).unwrap();
        assert!(woke);
        let due: Vec<_> = all.take_due(at(99)).0.into_iter().map(|(n, _)| n).collect();
        assert_eq!(due, vec![names[1].clone()]);
    }

    #[test]
    fn no_more_than_max_running_tasks_are_started_at_once() {
        let (mut all, names) = accounts(1_000);
        let (due, next) = all.take_due(at(5_000));
        assert_eq!(due.len(), MAX_RUNNING);
        assert_eq!(next, None, "full: the next look comes when a task ends");
        assert!(all.take_due(at(5_000)).0.is_empty());
        let (_, woke) = all.change(&due[0].0, |s| s.busy = false).unwrap();
        assert!(woke);
        let (more, _) = all.take_due(at(5_000));
        // Room for one: the account that just ended is due again (its re-read did nothing
        // here), or the next in line.
        assert_eq!(more.len(), 1);
        assert_eq!(names.len(), 1_000);
    }

    #[test]
    fn removed_accounts_are_skipped() {
        let (mut all, names) = accounts(3);
        let gone = names[1].clone();
        all.retain(|n| *n != gone);
        let due: Vec<_> = all.take_due(at(5)).0.into_iter().map(|(n, _)| n).collect();
        assert_eq!(due, vec![names[0].clone(), names[2].clone()]);
    }
}
