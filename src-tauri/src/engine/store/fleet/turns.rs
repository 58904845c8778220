//! The fleet (`[store] kind = "redis"`) seen from the engine: a refresh takes the account's
//! lease before it fetches and checks it is still its own just before the request goes out,
//! and a host that finds another one refreshing waits for that host's set instead of
//! fetching its own. Sets other hosts write are taken in as they are published, under the
//! account's gate, so serving never asks Redis.

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{FleetError, Heard, Lease, Leased};
use crate::engine::names::AccountName;
use crate::engine::provider::RefreshError;
use crate::engine::refresh::quota;
use crate::engine::secret::{Secret, TokenSet};
use crate::engine::Engine;

pub(crate) enum Turn {
    /// This host refreshes; its lease is renewed until this is dropped.
    Mine { _held: Lease },
    /// Another host refreshed meanwhile, and its set is now this host's too.
    Taken,
}

/// Whose turn it is to refresh `name` in the fleet (`None`: no fleet, this host alone).
/// `current` is the set the refresh started from: once another host stored a different
/// one, that one is taken and nothing is fetched, so a rotated refresh token is never
/// used twice.
pub(crate) async fn fleet_turn(
    engine: &Engine,
    name: &AccountName,
    current: Option<&TokenSet>,
) -> Result<Option<Turn>, RefreshError> {
    let Some(fleet) = engine.shared.sharing.fleet() else {
        return Ok(None);
    };
    let before = current.map(|t| t.access.clone());
    let unavailable = |what: String| RefreshError::SharedStore {
        account: name.clone(),
        what,
    };
    let patience = fleet.coordinator.lease_time() * 4;
    let (before, unavailable) = (&before, &unavailable);
    let settled = |_| async move {
        // What is stored now decides: another host may have written since this one
        // last heard.
        if let Err(e) = crate::engine::account::reading::reread(engine, name).await {
            return Some(Err(unavailable(e.to_string())));
        }
        changed_since(engine, name, before.as_ref()).then_some(Ok(()))
    };
    let waited = fleet
        .coordinator
        .lease(name, patience, settled)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    match waited {
        Leased::Mine(lease) => Ok(Some(Turn::Mine { _held: lease })),
        Leased::Settled(Ok(())) => Ok(Some(Turn::Taken)),
        Leased::Settled(Err(e)) => Err(e),
        Leased::Busy => Err(unavailable(format!(
            "another host has held the lease for longer than {}; waiting for it",
            humantime::format_duration(patience)
        ))),
    }
}

/// Just before a refresh's request goes to the provider: in a fleet, the lease must still
/// be this host's (and is extended for the request). A host that stalled past it (a
/// paused machine, a long wait for its turn at the provider's host) may be holding a
/// refresh token that another host has used since: it abandons, sending nothing.
pub(crate) async fn confirm_lease(engine: &Engine, name: &AccountName) -> Result<(), RefreshError> {
    let Some(fleet) = engine.shared.sharing.fleet() else {
        return Ok(());
    };
    let what = match fleet.coordinator.renew(name).await {
        Ok(true) => return Ok(()),
        Ok(false) => "this host's lease on the account ended before its request went to the provider (another host may be refreshing it); nothing was sent".to_owned(),
        Err(e) => format!("cannot confirm this host's lease before asking the provider ({e}); nothing was sent"),
    };
    tracing::warn!(account = %name, "{what}");
    Err(RefreshError::SharedStore {
        account: name.clone(),
        what,
    })
}

fn changed_since(engine: &Engine, name: &AccountName, before: Option<&Secret>) -> bool {
    engine
        .with_slot(name, |s| match (s.state.tokens(), before) {
            (Some(now), Some(before)) => !now.access.same_as(before.expose()),
            (Some(_), None) => true,
            (None, _) => false,
        })
        .unwrap_or(false)
}

/// Takes in the sets other hosts write, until `stop`.
pub(crate) async fn hear_fleet(engine: &Engine, stop: CancellationToken) {
    let Some(fleet) = engine.shared.sharing.fleet().cloned() else {
        return;
    };
    let mut heard = fleet.coordinator.heard();
    fleet.coordinator.listen();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = heard.recv() => message,
        };
        match message {
            Ok(Heard::Changed(name)) => take_in(engine, name),
            Ok(Heard::Resubscribed) | Err(broadcast::error::RecvError::Lagged(_)) => {
                tracing::info!("hearing the other hosts again; re-reading every account");
                // A Redis that restarted empty gets its check entry back before any set.
                let store = fleet.store.clone();
                match tokio::task::spawn_blocking(move || store.prove_key()).await {
                    Ok(Err(e @ FleetError::WrongKey { .. })) => {
                        tracing::error!(error = %e, "the shared store no longer opens with this host's key");
                    }
                    // A connection that broke with the outage fails once, then connects
                    // again: not a key problem.
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot check the store key yet"),
                    _ => {}
                }
                for account in &engine.config().accounts {
                    take_in(engine, account.name.clone());
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    fleet.coordinator.stop_listening();
}

/// Re-reads one account from the store under its gate (after any refresh of it here).
fn take_in(engine: &Engine, name: AccountName) {
    let owned = engine.clone();
    engine.shared.tasks.spawn(async move {
        let engine = owned;
        let Ok(gate) = engine.with_slot(&name, |s| s.gate.clone()) else {
            return; // not an account of this host's config
        };
        let _turn = gate.lock().await;
        if let Err(e) = crate::engine::account::reading::reread(&engine, &name).await {
            tracing::warn!(account = %name, error = %e, "cannot read the set another host wrote; reading it again at the next refresh");
        }
        if let Ok(account) = engine.account(&name) {
            quota::take_in_fetches(&engine, &account).await;
        }
    });
}
