//! An account's stored token set read into its slot: at the first need after start, on
//! request, or again after a failed read (what the store holds wins over what this engine
//! remembers, unless the store lost a set this engine still holds); and the check that only
//! the engine owning the store changes an account.

use crate::engine::account::state::AccountState;
use crate::engine::names::AccountName;
use crate::engine::store::Kept;
use crate::engine::{Engine, EngineError, Mode};

/// Reads an account the engine has not read from the keychain yet (just after start, or
/// after a failed read), so a caller is never told "no token" about one the keychain holds.
pub(crate) async fn read_if_unread(engine: &Engine, name: &AccountName) -> Result<(), EngineError> {
    if !is_unread(engine, name)? {
        return Ok(());
    }
    let gate = engine.with_slot(name, |s| s.gate.clone())?;
    let _turn = gate.lock().await;
    if is_unread(engine, name)? {
        reread(engine, name).await?;
    }
    Ok(())
}

pub(crate) fn is_unread(engine: &Engine, name: &AccountName) -> Result<bool, EngineError> {
    engine.with_slot(name, |s| matches!(s.state, AccountState::Unread { .. }))
}

/// The keychain read itself (call under the gate).
pub(crate) async fn reread(engine: &Engine, name: &AccountName) -> Result<(), EngineError> {
    if engine.with_slot(name, |s| s.unsaved.is_some())? {
        return Ok(());
    }
    let now = crate::engine::clock::now();
    // What this host holds, should the shared store have lost the set or gone back to an
    // older one: it goes back in (see `store::restore`).
    let mine = || {
        engine
            .with_slot(name, |s| s.state.tokens().cloned())
            .ok()
            .flatten()
    };
    match engine.shared.keychain.tokens_keeping(name, mine).await {
        Ok(Kept::Restored(_, written)) => written.map_err(EngineError::from),
        Ok(Kept::Read(stored)) => take_stored(engine, name, stored),
        Err(e) => {
            engine.update(name, |s| {
                if matches!(s.state, AccountState::Unread { .. }) {
                    let state = std::mem::replace(&mut s.state, AccountState::NotConnected);
                    s.state = state.unreadable(e.to_string(), now, rand::random());
                }
            })?;
            Err(e.into())
        }
    }
}

/// Installs what the store holds, unless it is what this engine already has. In a fleet,
/// a stored set older than the one this host holds never gets here: the store compares
/// fences and stores this host's again instead (see `store::restore`).
fn take_stored(
    engine: &Engine,
    name: &AccountName,
    stored: Option<crate::engine::secret::TokenSet>,
) -> Result<(), EngineError> {
    let fleet = engine.shared.keychain.is_shared();
    engine.update(name, |s| {
        // A set from the journal (replayed while this read was out) is newer than what
        // the keychain held; its own save compares them by sequence number.
        if s.unsaved.as_ref().is_some_and(|u| u.journaled) {
            return;
        }
        let same = match (&stored, s.state.tokens()) {
            (Some(a), Some(b)) => a.access.same_as(b.access.expose()),
            (None, None) => !matches!(s.state, AccountState::Unread { .. }),
            _ => false,
        };
        if !same {
            // In a fleet, a set replacing one this host served is another host's refresh:
            // reports of it get the same grace as after a refresh of this host's own.
            if fleet && stored.is_some() && s.state.tokens().is_some() {
                s.mark_refreshed(crate::engine::clock::now());
            }
            let lead = s.account.schedule;
            let gave_up = s.restored.take();
            s.state = AccountState::from_stored(stored, gave_up, lead, name);
            s.generation += 1;
            s.last_outcome = None;
        }
    })?;
    engine.shared.wake.notify_one();
    Ok(())
}

/// Writes to an account's secrets are for the engine that owns the keychain service.
pub(crate) fn writer_only(engine: &Engine, name: &AccountName) -> Result<(), EngineError> {
    if engine.mode() == Mode::Observer {
        return Err(EngineError::usage(
            name,
            "another Tokenwarden engine owns this account's secrets; ask it (the CLI does so through its API)",
        ));
    }
    Ok(())
}
