//! The fleet (`[store] kind = "redis"`) seen from the engine: a refresh takes the account's
//! lease before it fetches and checks it is still its own just before the request goes out,
//! and a host that finds another one refreshing waits for that host's set instead of
//! fetching its own. Sets other hosts write are taken in as they are published, under the
//! account's gate, so serving never asks Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::engine::names::AccountName;
use crate::engine::provider::RefreshError;
use crate::engine::refresh::quota;
use crate::engine::secret::{Secret, TokenSet};
use crate::engine::store::fleet::{Fleet, FleetError, Heard};
use crate::engine::Engine;

/// How often a host waiting for another's refresh looks at the store, in case a published
/// message was lost.
const LOOK_AGAIN: Duration = Duration::from_millis(250);

pub(crate) enum Turn {
    /// This host refreshes; its lease is renewed until this is dropped.
    Mine { _held: Lease },
    /// Another host refreshed meanwhile, and its set is now this host's too.
    Taken,
}

/// An account's lease, renewed while held and released when dropped.
pub(crate) struct Lease {
    fleet: Arc<Fleet>,
    account: AccountName,
    fence: u64,
    renewing: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn start(fleet: Arc<Fleet>, account: AccountName, fence: u64) -> Self {
        let renewing = {
            let (fleet, account) = (fleet.clone(), account.clone());
            tokio::spawn(async move {
                let every = fleet.lease_time() / 3;
                loop {
                    tokio::time::sleep(every).await;
                    let (f, a) = (fleet.clone(), account.clone());
                    match tokio::task::spawn_blocking(move || f.renew(&a)).await {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => {
                            tracing::warn!(account = %account, "lost this account's lease to another host; this host sends nothing more to the provider for it, and a set it already fetched is stored only if no newer one was");
                            return;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(account = %account, error = %e, "cannot renew the lease")
                        }
                        Err(_) => return,
                    }
                }
            })
        };
        Self {
            fleet,
            account,
            fence,
            renewing,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewing.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (fleet, account, fence) = (self.fleet.clone(), self.account.clone(), self.fence);
            runtime.spawn_blocking(move || {
                if let Err(e) = fleet.release(&account, fence) {
                    tracing::debug!(account = %account, error = %e, "lease not released; it lapses by itself");
                }
            });
        }
    }
}

impl Engine {
    pub(crate) fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.shared.fleet.as_ref()
    }

    /// Whose turn it is to refresh `name` in the fleet (`None`: no fleet, this host alone).
    /// `current` is the set the refresh started from: once another host stored a different
    /// one, that one is taken and nothing is fetched, so a rotated refresh token is never
    /// used twice.
    pub(crate) async fn fleet_turn(
        &self,
        name: &AccountName,
        current: Option<&TokenSet>,
    ) -> Result<Option<Turn>, RefreshError> {
        let Some(fleet) = self.fleet().cloned() else {
            return Ok(None);
        };
        let before = current.map(|t| t.access.clone());
        let mut heard = fleet.heard();
        let give_up = Instant::now() + fleet.lease_time() * 4;
        let unavailable = |what: String| RefreshError::SharedStore {
            account: name.clone(),
            what,
        };
        loop {
            let acquired = {
                let (f, n) = (fleet.clone(), name.clone());
                tokio::task::spawn_blocking(move || f.acquire(&n))
                    .await
                    .map_err(|e| unavailable(e.to_string()))?
                    .map_err(|e: FleetError| unavailable(e.to_string()))?
            };
            let lease = acquired.map(|fence| Lease::start(fleet.clone(), name.clone(), fence));
            // What is stored now decides: another host may have written since this one
            // last heard.
            self.reread(name)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            if self.changed_since(name, before.as_ref()) {
                return Ok(Some(Turn::Taken));
            }
            if let Some(lease) = lease {
                return Ok(Some(Turn::Mine { _held: lease }));
            }
            if Instant::now() > give_up {
                return Err(unavailable(format!(
                    "another host has held the lease for longer than {}; waiting for it",
                    humantime::format_duration(fleet.lease_time() * 4)
                )));
            }
            let _ = tokio::time::timeout(LOOK_AGAIN, heard_of(&mut heard, name)).await;
        }
    }

    /// Just before a refresh's request goes to the provider: in a fleet, the lease must still
    /// be this host's (and is extended for the request). A host that stalled past it (a
    /// paused machine, a long wait for its turn at the provider's host) may be holding a
    /// refresh token that another host has used since: it abandons, sending nothing.
    pub(crate) async fn confirm_lease(&self, name: &AccountName) -> Result<(), RefreshError> {
        let Some(fleet) = self.fleet().cloned() else {
            return Ok(());
        };
        let n = name.clone();
        let renewed = tokio::task::spawn_blocking(move || fleet.renew(&n)).await;
        let what = match renewed {
            Ok(Ok(true)) => return Ok(()),
            Ok(Ok(false)) => "this host's lease on the account ended before its request went to the provider (another host may be refreshing it); nothing was sent".to_owned(),
            Ok(Err(e)) => format!("cannot confirm this host's lease before asking the provider ({e}); nothing was sent"),
            Err(e) => format!("cannot confirm this host's lease before asking the provider ({e}); nothing was sent"),
        };
        tracing::warn!(account = %name, "{what}");
        Err(RefreshError::SharedStore {
            account: name.clone(),
            what,
        })
    }

    fn changed_since(&self, name: &AccountName, before: Option<&Secret>) -> bool {
        self.with_slot(name, |s| match (s.state.tokens(), before) {
            (Some(now), Some(before)) => !now.access.same_as(before.expose()),
            (Some(_), None) => true,
            (None, _) => false,
        })
        .unwrap_or(false)
    }

    /// Takes in the sets other hosts write, until `stop`.
    pub(crate) async fn hear_fleet(&self, stop: CancellationToken) {
        let Some(fleet) = self.fleet().cloned() else {
            return;
        };
        let mut heard = fleet.heard();
        fleet.listen();
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => break,
                message = heard.recv() => message,
            };
            match message {
                Ok(Heard::Changed(name)) => self.take_in(name),
                Ok(Heard::Resubscribed) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    tracing::info!("hearing the other hosts again; re-reading every account");
                    // A Redis that restarted empty gets its check entry back before any set.
                    let f = fleet.clone();
                    match tokio::task::spawn_blocking(move || f.prove_key()).await {
                        Ok(Err(e @ FleetError::WrongKey { .. })) => {
                            tracing::error!(error = %e, "the shared store no longer opens with this host's key");
                        }
                        // A connection that broke with the outage fails once, then connects
                        // again: not a key problem.
                        Ok(Err(e)) => tracing::warn!(error = %e, "cannot check the store key yet"),
                        _ => {}
                    }
                    for account in &self.config().accounts {
                        self.take_in(account.name.clone());
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        fleet.stop_listening();
    }

    /// Re-reads one account from the store under its gate (after any refresh of it here).
    fn take_in(&self, name: AccountName) {
        let engine = self.clone();
        self.shared.tasks.spawn(async move {
            let Ok(gate) = engine.with_slot(&name, |s| s.gate.clone()) else {
                return; // not an account of this host's config
            };
            let _turn = gate.lock().await;
            if let Err(e) = engine.reread(&name).await {
                tracing::warn!(account = %name, error = %e, "cannot read the set another host wrote; reading it again at the next refresh");
            }
            if let Ok(account) = engine.account(&name) {
                quota::take_in_fetches(&engine, &account).await;
            }
        });
    }
}

/// Waits until `name` is heard of (or the subscription came back after a gap).
async fn heard_of(heard: &mut broadcast::Receiver<Heard>, name: &AccountName) {
    loop {
        match heard.recv().await {
            Ok(Heard::Changed(n)) if &n == name => return,
            Ok(Heard::Changed(_)) => {}
            Ok(Heard::Resubscribed) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
        }
    }
}
