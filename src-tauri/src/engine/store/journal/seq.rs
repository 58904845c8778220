//! Sequence numbers of token sets: every set the engine writes to the keychain carries one
//! (`seq` in the item's JSON), and so does its journal entry, so that a start replays an
//! entry only when it is newer than what the keychain holds. A number is the wall clock in
//! microseconds, or one more than the last number seen when that is higher: it keeps
//! growing across restarts (the journal's highest number is observed at start) even when
//! the journal was emptied and the clock stepped back.

use std::sync::atomic::{AtomicU64, Ordering};

static LAST: AtomicU64 = AtomicU64::new(0);

/// A number higher than every one handed out or observed in this process.
pub fn next() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Numbers from now on are higher than `seq` (one read from the journal or the keychain).
pub fn observe(seq: u64) {
    LAST.fetch_max(seq, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_only_grow_even_past_a_number_from_the_future() {
        let a = super::next();
        let b = super::next();
        assert!(b > a);
        let future = b + 3_600_000_000;
        super::observe(future);
        assert!(super::next() > future);
    }
}
