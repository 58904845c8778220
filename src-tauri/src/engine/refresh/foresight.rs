//! Foresight: when an account's refresh token itself stops working, so that the user
//! reconnects before anything breaks instead of after. The deadline is the earliest of what
//! the provider said (`refresh_token_expires_in` and the like, kept in the token set), the
//! account's `refresh_token_lifetime` counted from when the refresh token was issued (Google
//! apps in "Testing": 7 days; the provider says nothing), and the preset's inactivity limit
//! counted from the last refresh (Google: six months unused; Microsoft: 90 days). A
//! `reconnect_soon` event goes out once per deadline, `[refresh] reconnect_warning` before it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::engine::config::Account;
use crate::engine::events::EngineEvent;
use crate::engine::names::{AccountName, Deadline};
use crate::engine::secret::TokenSet;
use crate::engine::Engine;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Accounts are looked at again at least this often (a deadline the provider moved, a clock
/// that jumped).
const RESCAN: Duration = Duration::from_secs(3600);

/// How long a refresh token of this preset lives unused, where the provider does not say.
pub fn idle_limit(preset: &str) -> Option<Duration> {
    match preset {
        // "A refresh token that has not been used for six months" (Google's OAuth docs).
        "google" | "fitbit" => Some(DAY * 183),
        // Microsoft identity platform: 90 days of inactivity.
        "microsoft" => Some(DAY * 90),
        _ => None,
    }
}

impl Account {
    /// When the user must reconnect at the latest, if that is known.
    pub fn reconnect_by(&self, tokens: &TokenSet) -> Option<Deadline> {
        tokens.refresh.as_ref()?;
        let idle = idle_limit(&self.provider_name)
            .map(|limit| Deadline::after(tokens.obtained_at.time(), limit));
        match (tokens.refresh_expires_at, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// An account's reconnect deadline now, and when its warning is due.
fn reconnect_deadline(
    engine: &Engine,
    name: &AccountName,
    lead: Duration,
) -> Option<(Deadline, Deadline)> {
    let accounts = engine.shared.accounts.lock().expect("poisoned");
    let slot = accounts.get(name)?;
    let by = slot.account.reconnect_by(slot.state.tokens()?)?;
    Some((
        by,
        Deadline::at(by.time().checked_sub(lead).unwrap_or(by.time())),
    ))
}

/// Warns about `name` if its warning is due and not yet sent for this deadline; else
/// when it will be due.
fn foresee(
    engine: &Engine,
    name: &AccountName,
    lead: Duration,
    warned: &mut HashMap<AccountName, Deadline>,
) -> Option<Deadline> {
    let (by, warn_at) = reconnect_deadline(engine, name, lead)?;
    if warned.get(name) == Some(&by) {
        return None;
    }
    if !warn_at.has_passed(crate::engine::clock::now()) {
        return Some(warn_at);
    }
    tracing::warn!(account = %name, by = %by, "the refresh token stops working soon: reconnect before then");
    engine.emit(EngineEvent::ReconnectSoon {
        account: name.clone(),
        by,
    });
    warned.insert(name.clone(), by);
    None
}

/// Looks at every account: the next warning due.
fn foresee_all(
    engine: &Engine,
    lead: Duration,
    warned: &mut HashMap<AccountName, Deadline>,
) -> Deadline {
    let names: Vec<AccountName> = engine
        .config()
        .accounts
        .iter()
        .map(|a| a.name.clone())
        .collect();
    let rescan = Deadline::after(crate::engine::clock::now(), RESCAN);
    names
        .iter()
        .filter_map(|name| foresee(engine, name, lead, warned))
        .fold(rescan, Deadline::min)
}

/// Sends `reconnect_soon` once per account and deadline, `lead` before it. Looks at every
/// account when a warning is due, after a config reload and once an hour, and at one
/// account when it is refreshed: never a scan per refresh.
pub(crate) async fn watch_reconnects(engine: &Engine, stop: CancellationToken) {
    let mut events = engine.subscribe();
    let mut warned: HashMap<AccountName, Deadline> = HashMap::new();
    let mut lead = engine.config().reconnect_warning;
    let mut next = foresee_all(engine, lead, &mut warned);
    loop {
        let sleep = next.remaining(crate::engine::clock::now());
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(sleep) => next = foresee_all(engine, lead, &mut warned),
            event = events.recv() => match event {
                Ok(EngineEvent::Refreshed { account, .. }) => {
                    if let Some(at) = foresee(engine, &account, lead, &mut warned) {
                        next = next.min(at);
                    }
                }
                Ok(EngineEvent::ConfigReloaded { .. }) | Err(RecvError::Lagged(_)) => {
                    lead = engine.config().reconnect_warning;
                    next = foresee_all(engine, lead, &mut warned);
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_limits_are_known_for_google_and_microsoft_only() {
        assert_eq!(idle_limit("fitbit"), Some(DAY * 183));
        assert_eq!(idle_limit("microsoft"), Some(DAY * 90));
        assert_eq!(idle_limit("fitbit-legacy"), None);
        assert_eq!(idle_limit("wechat"), None);
    }
}
