//! One task that sleeps until the earliest deadline, a wake-up or cancellation, whichever
//! comes first, then starts what is due. Deadlines are wall-clock times and every sleep is
//! capped, because tokio's timers stop while a laptop is suspended: re-reading the wall
//! clock each minute makes "refresh at once on wake" true.

use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::history::Trigger;
use super::names::AccountName;
use super::secrets::SecretKey;
use super::Engine;

/// Cap on every sleep (see the module comment).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How often an account waiting for the user re-reads the keychain, to notice a `connect`
/// or `secret set` done by another process.
const RECHECK_EVERY: Duration = Duration::from_secs(20);

pub(super) async fn run(engine: Engine, stop: CancellationToken) {
    loop {
        let now = SystemTime::now();
        let plan = engine.plan(now);
        for (name, trigger) in plan.refresh {
            engine.spawn_refresh(name, trigger);
        }
        for name in plan.recheck {
            let engine = engine.clone();
            engine
                .shared
                .tasks
                .clone()
                .spawn(async move { engine.recheck(&name).await });
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

#[derive(Default)]
struct Plan {
    refresh: Vec<(AccountName, Trigger)>,
    recheck: Vec<AccountName>,
    next: Option<SystemTime>,
}

impl Engine {
    /// What is due now, and when the next thing will be.
    fn plan(&self, now: SystemTime) -> Plan {
        let mut plan = Plan::default();
        let mut accounts = self.shared.accounts.lock().expect("poisoned");
        let ready: Vec<AccountName> = accounts
            .iter()
            .filter(|(_, s)| {
                s.tokens
                    .as_ref()
                    .is_some_and(|t| !t.expires_at.has_passed(now))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for slot in accounts.values_mut() {
            if slot.in_flight {
                continue;
            }
            let upstream_ready = slot.account.upstream.iter().all(|u| ready.contains(u));
            let at = |time: SystemTime, trigger: Trigger, plan: &mut Plan| {
                if time <= now {
                    if upstream_ready {
                        plan.refresh.push((slot.account.name.clone(), trigger));
                        return true;
                    }
                } else {
                    plan.next = Some(plan.next.map_or(time, |n| n.min(time)));
                }
                false
            };
            let started = match &slot.health {
                Health::Fresh if slot.unsaved => {
                    plan.recheck.push(slot.account.name.clone());
                    slot.in_flight = true;
                    false
                }
                Health::Fresh => slot
                    .refresh_at
                    .is_some_and(|t| at(t, Trigger::Scheduled, &mut plan)),
                Health::Retrying { next_try, .. } => at(next_try.time(), Trigger::Retry, &mut plan),
                Health::NotConnected if !slot.account.provider.needs_consent() => {
                    at(now, Trigger::Startup, &mut plan)
                }
                Health::NotConnected | Health::NeedsReconnect => {
                    if slot
                        .last_recheck
                        .is_none_or(|t| t.elapsed() >= RECHECK_EVERY)
                    {
                        slot.last_recheck = Some(Instant::now());
                        slot.in_flight = true;
                        plan.recheck.push(slot.account.name.clone());
                    }
                    false
                }
                Health::Refreshing => false,
            };
            if started {
                slot.in_flight = true;
            }
        }
        plan
    }

    /// An account that waits for the user (or for a keychain write) looks again: a token set
    /// written by `connect` in another process, a new client secret, or a retry of the write.
    pub(super) async fn recheck(&self, name: &AccountName) {
        let result = self.recheck_inner(name).await;
        if let Err(e) = result {
            tracing::debug!(account = %name, error = %e, "recheck failed");
        }
        self.with_slot(name, |s| s.in_flight = false).ok();
        self.shared.wake.notify_one();
    }

    async fn recheck_inner(&self, name: &AccountName) -> Result<(), super::EngineError> {
        let (unsaved, tokens, needs_consent, last_secret) = self.with_slot(name, |s| {
            (
                s.unsaved,
                s.tokens.clone(),
                s.account.provider.needs_consent(),
                s.last_secret.clone(),
            )
        })?;
        if unsaved {
            if let Some(set) = tokens {
                if self.save_tokens(name, &set).await.is_ok() {
                    self.with_slot(name, |s| {
                        s.unsaved = false;
                        s.last_error = None;
                    })?;
                    tracing::info!(account = %name, "the new token is now saved in the keychain");
                    self.persist_state(name);
                }
            }
            return Ok(());
        }
        if self.adopt_stored(name).await? {
            tracing::info!(account = %name, "took the token set stored by another process");
            self.persist_state(name);
            self.emit(super::events::EngineEvent::HealthChanged {
                account: name.clone(),
                status: "fresh",
            });
            return Ok(());
        }
        if !needs_consent {
            // A secret set since the last failure (missing before, or a different one) may work.
            let secret = self
                .shared
                .keychain
                .get(SecretKey::ClientSecret(name.clone()))
                .await?;
            let changed = match (&secret, &last_secret) {
                (Some(now), Some(before)) => !now.same_as(before.expose()),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if changed {
                self.with_slot(name, |s| {
                    s.health = Health::Retrying {
                        attempt: 0,
                        next_try: super::names::Deadline::now(),
                    }
                })?;
            }
        }
        Ok(())
    }
}
