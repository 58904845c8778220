//! The connections one listener serves at once, and which one gives way when a newcomer finds
//! them all taken: the one idle longest, never one mid-request. An idle connection costs
//! whoever holds it nothing, so a cap that refused newcomers instead would let any local
//! process holding more idle sockets than the cap keep every client out.
//!
//! Nothing here is on a request's path but two atomic writes: the open connections are
//! listed once each (under a lock, when accepted and when closed), and only a newcomer at the
//! cap looks through them for the one to close.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

pub struct Slots {
    size: usize,
    /// What `idle_since` counts from.
    epoch: Instant,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next: u64,
    conns: HashMap<u64, Arc<Conn>>,
}

/// One open connection, as its task and the newcomers see it.
struct Conn {
    /// Requests being answered: from the request's head until the last byte of its answer's
    /// body was handed over.
    busy: AtomicU32,
    served: AtomicBool,
    /// Nanoseconds after `epoch` when it last became idle (or was accepted).
    idle_since: AtomicU64,
    /// Cancelled when a newcomer takes its place.
    shed: CancellationToken,
}

/// What a newcomer gets.
pub enum Admitted {
    /// A free place.
    Free(Slot),
    /// The place of the connection idle longest, which is told to close.
    Shed(Slot),
    /// None: every connection is mid-request.
    Full,
}

impl Slots {
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            size,
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A place for a new connection.
    pub fn admit(self: &Arc<Self>) -> Admitted {
        let conn = Arc::new(Conn {
            busy: AtomicU32::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(self.now()),
            shed: CancellationToken::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let shed = if open.conns.len() < self.size {
            false
        } else {
            let idlest = open
                .conns
                .iter()
                .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Acquire))
                .map(|(id, _)| *id);
            let Some(victim) = idlest.and_then(|id| open.conns.remove(&id)) else {
                return Admitted::Full;
            };
            // Should a request begin on it after all (its head was on the way), its task
            // lets that request finish before it closes: see `Slot::is_busy`.
            victim.shed.cancel();
            true
        };
        let id = open.next;
        open.next += 1;
        open.conns.insert(id, conn.clone());
        drop(open);
        let slot = Slot {
            slots: self.clone(),
            id,
            conn,
        };
        if shed {
            Admitted::Shed(slot)
        } else {
            Admitted::Free(slot)
        }
    }
}

/// A connection's place; given up when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    conn: Arc<Conn>,
}

impl Slot {
    /// A request begins; it ends when the guard is dropped (with the answer's body).
    pub fn begin(&self) -> Busy {
        self.conn.busy.fetch_add(1, Ordering::AcqRel);
        self.conn.served.store(true, Ordering::Release);
        Busy {
            conn: self.conn.clone(),
            slots: self.slots.clone(),
        }
    }

    /// Completes when a newcomer has taken this connection's place.
    pub async fn shed(&self) {
        self.conn.shed.cancelled().await;
    }

    pub fn is_busy(&self) -> bool {
        self.conn.busy.load(Ordering::Acquire) > 0
    }

    /// Whether it answered a request: its last answer may still be on its way out.
    pub fn has_served(&self) -> bool {
        self.conn.served.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        // Gone already when it was shed.
        if open
            .conns
            .get(&self.id)
            .is_some_and(|c| Arc::ptr_eq(c, &self.conn))
        {
            open.conns.remove(&self.id);
        }
    }
}

/// A request in progress on a connection.
pub struct Busy {
    conn: Arc<Conn>,
    slots: Arc<Slots>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The time first: whoever sees it idle must see since when.
        self.conn
            .idle_since
            .store(self.slots.now(), Ordering::Release);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(admitted: Admitted) -> Slot {
        match admitted {
            Admitted::Free(s) | Admitted::Shed(s) => s,
            Admitted::Full => panic!("refused"),
        }
    }

    #[test]
    fn a_newcomer_at_the_cap_takes_the_place_of_the_connection_idle_longest() {
        let slots = Slots::new(3);
        let a = slot(slots.admit());
        let b = slot(slots.admit());
        let c = slot(slots.admit());
        // `a` answers a request after `b` was accepted: `b` is now the idlest.
        drop(a.begin());
        assert!(matches!(slots.admit(), Admitted::Shed(_)));
        assert!(b.conn.shed.is_cancelled());
        assert!(!a.conn.shed.is_cancelled() && !c.conn.shed.is_cancelled());
        assert!(a.has_served() && !c.has_served());
    }

    #[test]
    fn a_connection_mid_request_never_gives_way_and_a_full_cap_refuses() {
        let slots = Slots::new(2);
        let a = slot(slots.admit());
        let b = slot(slots.admit());
        let (_x, y) = (a.begin(), b.begin());
        assert!(matches!(slots.admit(), Admitted::Full));
        assert!(!a.conn.shed.is_cancelled() && !b.conn.shed.is_cancelled());
        // Once `b`'s answer is out, it is the one to go.
        drop(y);
        let d = slot(slots.admit());
        assert!(b.conn.shed.is_cancelled() && !a.conn.shed.is_cancelled());
        // A shed connection's place is the newcomer's; closing it frees nothing twice.
        drop(b);
        let z = d.begin();
        assert!(matches!(slots.admit(), Admitted::Full));
        drop(z);
        drop(d);
        assert!(matches!(slots.admit(), Admitted::Free(_)));
    }
}
