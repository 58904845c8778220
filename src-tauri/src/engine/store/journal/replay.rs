//! The journal at start: opened for an engine that writes (the refresher), and its entries
//! made their accounts' sets. An entry is there because its keychain write had not
//! returned when the last run ended, so the journal's set is the newest: it is installed as
//! the account's unsaved set, which the scheduler writes to the keychain before anything
//! else happens with the account. Before that write the keychain's set is read once: if
//! it is as new or newer after all (its sequence number says so; something that does not
//! journal wrote it), it wins and the entry is dropped.

use std::path::Path;
use std::sync::Arc;

use super::{Entry, Journal};
use crate::engine::account::slot::Unsaved;
use crate::engine::account::state::AccountState;
use crate::engine::config::StoreKind;
use crate::engine::names::{AccountName, Deadline};
use crate::engine::secret::TokenSet;
use crate::engine::store::item::{SecretKey, StoreError};
use crate::engine::{Engine, Mode};

/// The engine's journal, and the entries an earlier run left. Only a refresher on a local
/// store has one; one that cannot be opened (a keychain that does not answer at start)
/// leaves the file as it is for the next start and never stops the engine.
/// `kind` is the store the engine writes (`Redis` for a fleet's host), `service` the keychain
/// service's file stem, which names the journal.
pub(in crate::engine) async fn open(
    mode: Mode,
    kind: StoreKind,
    service: &str,
    data_dir: &Path,
    store: Arc<dyn crate::engine::store::item::SecretStore>,
) -> (Option<Arc<Journal>>, Vec<Entry>) {
    if mode != Mode::Refresher {
        return (None, Vec::new());
    }
    let writes = match kind {
        StoreKind::Keychain => true,
        // A row in the sealed database is already local and durable; an old journal is
        // still replayed into it (the store was switched after a crash).
        StoreKind::Database => false,
        StoreKind::Redis => return (None, Vec::new()),
    };
    let path = super::journal_path(data_dir, service);
    let opened = tokio::task::spawn_blocking(move || Journal::open(&path, &*store, writes)).await;
    let error = match opened {
        Ok(Ok(Some((journal, entries)))) => return (Some(Arc::new(journal)), entries),
        Ok(Ok(None)) => return (None, Vec::new()),
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("journal task: {e}"),
    };
    tracing::warn!(error, "the token journal is off until the next start: a crash between a refresh and its keychain write can lose a rotated refresh token meanwhile");
    (None, Vec::new())
}

/// Installs each entry as its account's unsaved set, due for writing now.
pub(in crate::engine) fn replay(engine: &Engine, entries: Vec<Entry>) {
    let now = crate::engine::clock::now();
    let (mut replayed, mut orphans) = (Vec::new(), 0);
    for entry in entries {
        let Some(set) = TokenSet::from_stored_json(&entry.stored) else {
            continue; // sealed by us: cannot happen, and nothing to install
        };
        let name = entry.account;
        let installed = engine.with_slot(&name, |s| {
            let lead = s.account.schedule;
            // A failure saved by a later run that could not read the journal is older
            // than this set, which a provider issued.
            s.restored = None;
            s.state = AccountState::from_stored(Some(set), None, lead, &name);
            s.generation += 1;
            s.unsaved = Some(Unsaved {
                attempt: 1,
                next_try: Deadline::at(now),
                message: "replayed from the token journal; not in the keychain yet".into(),
                seq: entry.seq,
                journaled: true,
                check_stored: true,
            });
        });
        match installed {
            Ok(()) => replayed.push(name.to_string()),
            Err(_) => orphans += 1,
        }
    }
    if !replayed.is_empty() {
        tracing::warn!(
            replayed = replayed.len(),
            accounts = %list(&replayed),
            "replayed token sets from the token journal: the last run ended before the keychain had them; writing them now"
        );
    }
    if orphans > 0 {
        tracing::info!(
            orphans,
            "the token journal holds sets of accounts the config no longer has; kept"
        );
    }
    engine.shared.wake.notify_one();
}

/// For a replayed set (sequence `seq`): whether the keychain holds one as new or newer,
/// which then becomes the account's set.
pub(in crate::engine) async fn stored_is_newer(
    engine: &Engine,
    name: &AccountName,
    seq: u64,
) -> Result<bool, StoreError> {
    let json = engine
        .shared
        .keychain
        .get(SecretKey::Tokens(name.clone()))
        .await?;
    let newer = json
        .as_ref()
        .filter(|json| TokenSet::stored_seq(json) >= seq)
        .and_then(|json| {
            Some((
                TokenSet::stored_seq(json),
                TokenSet::from_stored_json(json)?,
            ))
        });
    let Some((stored, set)) = newer else {
        engine
            .with_slot(name, |s| {
                if let Some(u) = &mut s.unsaved {
                    u.check_stored = false;
                }
            })
            .ok();
        return Ok(false);
    };
    engine
        .update(name, |s| {
            let lead = s.account.schedule;
            s.state = AccountState::from_stored(Some(set), None, lead, name);
            s.generation += 1;
            s.unsaved = None;
            s.last_outcome = None;
        })
        .ok();
    if let Some(journal) = engine.shared.journal.get().cloned().flatten() {
        let name = name.clone();
        let _ = tokio::task::spawn_blocking(move || journal.saved(&name, stored)).await;
    }
    tracing::info!(account = %name, "the keychain holds a token set as new as the journal's or newer; the journal's is dropped");
    Ok(true)
}

/// Account names for a log line: the first ten, and how many more.
fn list(names: &[String]) -> String {
    match names.len() {
        0..=10 => names.join(", "),
        n => format!("{} and {} more", names[..10].join(", "), n - 10),
    }
}
