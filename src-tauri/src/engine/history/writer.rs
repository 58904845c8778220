//! The history's writer: one thread of its own that writes in order and in batches, so that
//! SQLite (and its busy timeout while another process reads) never blocks the async workers.

use std::time::Duration;

use super::{History, HistoryError, Record, BATCH};
use crate::engine::ledger::Taker;
use crate::engine::names::{AccountName, Deadline};

/// A write for the history thread.
enum Write {
    Record(Record),
    State {
        account: AccountName,
        status: String,
        last_error: Option<String>,
        last_refresh: Option<Deadline>,
    },
    Fetches {
        allowance: String,
        day: String,
        fetches: u32,
    },
    Took {
        account: AccountName,
        taker: Box<Taker>,
        times: u64,
        at: Deadline,
    },
    Flush(std::sync::mpsc::Sender<()>),
}

/// Writes the history on a thread of its own, in order, so that SQLite (and its busy
/// timeout when another process reads) never blocks the async workers.
pub struct Writer {
    queue: std::sync::mpsc::Sender<Write>,
}

impl Writer {
    pub fn start(history: History) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Write>();
        let _ = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || {
                // What piled up while the last batch was written goes in one transaction: ten
                // thousand accounts read at start, or hundreds refreshed a second, are one
                // commit per batch instead of one per row.
                while let Ok(first) = rx.recv() {
                    let more = rx.try_iter().take(BATCH - 1);
                    write_batch(&history, std::iter::once(first).chain(more).collect());
                }
            });
        Self { queue: tx }
    }

    fn send(&self, write: Write) {
        let _ = self.queue.send(write); // no thread (it could not start): nothing is written
    }

    pub fn record(&self, record: Record) {
        self.send(Write::Record(record));
    }

    pub fn save_state(
        &self,
        account: &AccountName,
        status: &str,
        last_error: Option<String>,
        last_refresh: Option<Deadline>,
    ) {
        self.send(Write::State {
            account: account.clone(),
            status: status.to_owned(),
            last_error,
            last_refresh,
        });
    }

    /// The day's count of fetches against a WeChat allowance, as it stands now.
    pub fn save_fetches(&self, allowance: &str, day: &str, fetches: u32) {
        self.send(Write::Fetches {
            allowance: allowance.to_owned(),
            day: day.to_owned(),
            fetches,
        });
    }

    /// Who took `account`'s token `times` times, the last now.
    pub fn took(&self, account: AccountName, taker: Taker, times: u64) {
        self.send(Write::Took {
            account,
            taker: Box::new(taker),
            times,
            at: Deadline::now(),
        });
    }

    /// Waits until everything sent so far is written (blocking: call off the async workers).
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Write::Flush(tx));
        let _ = rx.recv_timeout(Duration::from_secs(10));
    }
}

/// Writes a batch in one transaction (a lone write needs none), then answers the flushes
/// it held.
fn write_batch(history: &History, batch: Vec<Write>) {
    let log = |result: Result<(), HistoryError>| {
        if let Err(e) = result {
            tracing::error!(error = %e, "could not write the refresh log");
        }
    };
    let several = batch.len() > 1;
    if several {
        log(history.transaction("BEGIN"));
    }
    let mut flushed = Vec::new();
    // A busy API hands out thousands of tokens a second to a few programs: each program's
    // takes in a batch are one row update.
    let mut took: Vec<(AccountName, Box<Taker>, u64, Deadline)> = Vec::new();
    for write in batch {
        match write {
            Write::Record(r) => log(history.record(&r)),
            Write::State {
                account,
                status,
                last_error,
                last_refresh,
            } => log(history.save_state(&account, &status, last_error.as_deref(), last_refresh)),
            Write::Fetches {
                allowance,
                day,
                fetches,
            } => log(history.save_fetches(&allowance, &day, fetches)),
            Write::Took {
                account,
                taker,
                times,
                at,
            } => match took
                .iter_mut()
                .find(|(a, t, ..)| *a == account && **t == *taker)
            {
                Some((.., n, last)) => {
                    *n += times;
                    *last = (*last).max(at);
                }
                None => took.push((account, taker, times, at)),
            },
            Write::Flush(done) => flushed.push(done),
        }
    }
    for (account, taker, n, at) in took {
        log(history.took(&account, &taker, n, at));
    }
    if several {
        if let Err(e) = history.transaction("COMMIT") {
            log(Err(e));
            // Never leave a transaction open for the next batch to join.
            let _ = history.transaction("ROLLBACK");
        }
    }
    for done in flushed {
        let _ = done.send(());
    }
}
