//! One task that sleeps until the earliest deadline, a wake-up or cancellation, whichever
//! comes first, then starts what is due. Deadlines are wall-clock times and every sleep is
//! capped, because tokio's timers stop while a laptop is suspended: re-reading the wall
//! clock each minute makes "refresh at once on wake" true.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::history::Trigger;
use super::names::AccountName;
use super::state::{AccountState, Due};
use super::Engine;

/// Cap on every sleep (see the module comment).
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub(super) async fn run(engine: Engine, stop: CancellationToken) {
    loop {
        fault_hook();
        let now = crate::engine::clock::now();
        let plan = engine.plan(now);
        for (name, work) in plan.due {
            engine.start(name, work);
        }
        let nap = plan
            .next
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

/// What the scheduler starts for an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Refresh(Trigger),
    Save,
    Reread,
}

#[derive(Default)]
struct Plan {
    due: Vec<(AccountName, Work)>,
    next: Option<SystemTime>,
}

impl Plan {
    /// Due now: start it. Later: remember the earliest.
    fn at(&mut self, time: SystemTime, now: SystemTime) -> bool {
        if time <= now {
            return true;
        }
        self.next = Some(self.next.map_or(time, |n| n.min(time)));
        false
    }
}

impl Engine {
    /// What is due now, and when the next thing will be.
    fn plan(&self, now: SystemTime) -> Plan {
        let mut plan = Plan::default();
        let mut accounts = self.shared.accounts.lock().expect("poisoned");
        let ready: Vec<AccountName> = accounts
            .iter()
            .filter(|(_, s)| {
                s.state
                    .tokens()
                    .is_some_and(|t| !t.expires_at.has_passed(now))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for slot in accounts.values_mut() {
            if slot.busy {
                continue;
            }
            let name = slot.account.name.clone();
            let upstream_ready = slot.account.upstream.iter().all(|u| ready.contains(u));
            let work = if let Some(unsaved) = &slot.unsaved {
                // The unsaved set is the newest grant: save it before anything refreshes it.
                plan.at(unsaved.next_try.time(), now).then_some(Work::Save)
            } else {
                match slot.state.due() {
                    Some(Due::Refresh(at)) => (plan.at(at.time(), now) && upstream_ready)
                        .then_some(Work::Refresh(Trigger::Scheduled)),
                    Some(Due::Retry(at)) => (plan.at(at.time(), now) && upstream_ready)
                        .then_some(Work::Refresh(Trigger::Retry)),
                    Some(Due::Reread(at)) => plan.at(at.time(), now).then_some(Work::Reread),
                    // An account that needs no consent is fetched once at start (and again
                    // when its secret is set); one that does waits for the user.
                    None if matches!(slot.state, AccountState::NotConnected)
                        && !slot.account.provider.needs_consent()
                        && slot.fetch_unasked
                        && upstream_ready =>
                    {
                        slot.fetch_unasked = false;
                        Some(Work::Refresh(Trigger::Startup))
                    }
                    None => None,
                }
            };
            if let Some(work) = work {
                slot.busy = true;
                plan.due.push((name, work));
            }
        }
        plan
    }

    fn start(&self, name: AccountName, work: Work) {
        match work {
            Work::Refresh(trigger) => self.spawn_refresh(name, trigger),
            Work::Save | Work::Reread => {
                let engine = self.clone();
                self.shared.tasks.spawn(async move {
                    let _idle = super::refresh::NotBusy(&engine, &name);
                    if work == Work::Save {
                        engine.retry_save(&name).await;
                    } else if let Err(e) = engine.read_if_unread(&name).await {
                        tracing::debug!(account = %name, error = %e, "keychain read failed again");
                    }
                });
            }
        }
    }
}
