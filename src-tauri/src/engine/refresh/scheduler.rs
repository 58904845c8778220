//! One task that sleeps until the earliest deadline (popped from `deadlines`' heap), a wake-up or cancellation, whichever
//! comes first, then starts what is due. Deadlines are wall-clock times and every sleep is
//! capped, because tokio's timers stop while a laptop is suspended: re-reading the wall
//! clock each minute makes "refresh at once on wake" true.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::engine::account::slot::Work;
use crate::engine::names::AccountName;
use crate::engine::refresh::attempt;
use crate::engine::refresh::saving;
use crate::engine::Engine;

/// Cap on every sleep (see the module comment).
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub(crate) async fn run(engine: Engine, stop: CancellationToken) {
    loop {
        fault_hook();
        let now = crate::engine::clock::now();
        let (due, next) = plan(&engine, now);
        for (name, work) in due {
            start(&engine, name, work);
        }
        let nap = next
            .map_or(MAX_SLEEP, |t| {
                t.duration_since(now).unwrap_or(Duration::ZERO)
            })
            .min(MAX_SLEEP);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = engine.shared.wake.notified() => {}
            _ = tokio::time::sleep(nap.max(Duration::from_millis(20))) => {}
        }
    }
}

/// Debug builds only, for end-to-end tests of what happens when the scheduler dies: while a
/// file exists at `TOKENWARDEN_FAULT_SCHEDULER_PANIC`, the scheduler panics when it wakes.
fn fault_hook() {
    #[cfg(debug_assertions)]
    if let Some(flag) = std::env::var_os("TOKENWARDEN_FAULT_SCHEDULER_PANIC") {
        if std::path::Path::new(&flag).exists() {
            panic!("fault hook: the scheduler panics (TOKENWARDEN_FAULT_SCHEDULER_PANIC)");
        }
    }
}

/// What is due now (marked busy), and when the next thing will be.
fn plan(engine: &Engine, now: SystemTime) -> (Vec<(AccountName, Work)>, Option<SystemTime>) {
    engine
        .shared
        .accounts
        .lock()
        .expect("poisoned")
        .take_due(now)
}

fn start(engine: &Engine, name: AccountName, work: Work) {
    match work {
        Work::Refresh(trigger) => attempt::spawn_refresh(engine, name, trigger),
        Work::Save | Work::Reread => {
            let owned = engine.clone();
            engine.shared.tasks.spawn(async move {
                let engine = owned;
                let _idle = crate::engine::refresh::attempt::NotBusy(&engine, &name);
                if work == Work::Save {
                    saving::retry_save(&engine, &name).await;
                    return;
                }
                // A read has nothing to lose: a stop does not wait for a keychain that
                // answers a few calls a second (or waits for an unlock prompt).
                tokio::select! {
                    read = crate::engine::account::reading::read_if_unread(&engine, &name) => if let Err(e) = read {
                        tracing::debug!(account = %name, error = %e, "keychain read failed again");
                    },
                    _ = engine.shared.stop.cancelled() => {}
                }
            });
        }
    }
}
