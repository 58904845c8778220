//! Refreshes, owned by the engine. A caller asks and awaits the result, but the refresh is a
//! task of the engine: a caller that goes away (a closed HTTP connection, a timeout) cancels
//! nothing, so an answer that already rotated the refresh token is never thrown away.
//! Under the account's gate a refresh first decides whether the wait already gave it what it
//! needed ([`Skip`], or an attempt that finished meanwhile, whose outcome it shares), then
//! fetches, writes the keychain before anything else sees the new set, and commits the new
//! state only if the account's generation is still the one it started from.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::engine::account::state::AccountState;
use crate::engine::config::Account;
use crate::engine::history::Trigger;
use crate::engine::names::{AccountName, Deadline};
use crate::engine::provider::{self, FetchRequest, RefreshError};
use crate::engine::refresh::admission;
use crate::engine::refresh::commit;
use crate::engine::refresh::quota;
use crate::engine::secret::{Secret, TokenSet};
use crate::engine::store::fleet::turns;
use crate::engine::store::fleet::turns::Turn;
use crate::engine::store::item::SecretKey;
use crate::engine::store::Kept;
use crate::engine::{Engine, EngineError, Mode};

/// What a refresh may skip, decided under the account's gate.
#[derive(Clone, Debug)]
pub(crate) enum Skip {
    /// Always refresh (unless an attempt finished while this one waited).
    Never,
    /// Skip if the token is (now) valid for this long: someone refreshed while we waited.
    IfValidFor(Duration),
    /// Skip unless this is still the current token: reports of a 401 share one refresh.
    UnlessCurrent(Secret),
}

/// How long a dependency's token must stay valid for a dependent to be fetched with it.
const UPSTREAM_MARGIN: Duration = Duration::from_secs(5);

static NO_UPSTREAM: LazyLock<HashMap<AccountName, Secret>> = LazyLock::new(HashMap::new);

/// Runs a refresh as a task of the engine and awaits its result.
pub(crate) async fn refresh_owned(
    engine: &Engine,
    name: &AccountName,
    trigger: Trigger,
    skip: Skip,
) -> Result<(), EngineError> {
    let seen = engine.with_slot(name, |s| s.attempts)?;
    let (owned, name) = (engine.clone(), name.clone());
    engine
        .shared
        .tasks
        .spawn(async move { refresh_with(&owned, &name, trigger, skip, Some(seen)).await })
        .await
        .map_err(|e| EngineError::Io(format!("refresh task: {e}")))?
}

/// A scheduled refresh, retry or dependent fetch: nobody awaits it.
pub(crate) fn spawn_refresh(engine: &Engine, name: AccountName, trigger: Trigger) {
    let owned = engine.clone();
    engine.shared.tasks.spawn(async move {
        let engine = owned;
        // Even if the refresh panics, the account is not left "busy" forever, unseen by
        // the scheduler.
        let _idle = NotBusy(&engine, &name);
        // The first fetch of an account that needs no consent is moot once a caller's
        // request fetched a token first (a second fetch would revoke the first).
        let skip = if trigger == Trigger::Startup {
            Skip::IfValidFor(Duration::ZERO)
        } else {
            Skip::Never
        };
        // Failures are already recorded, logged and broadcast by the refresh itself.
        let _ = refresh_with(&engine, &name, trigger, skip, None).await;
    });
}

/// One refresh under the account's gate. `seen` is the attempt count when the caller
/// arrived: an attempt that finished after that answers for this caller too.
pub(crate) async fn refresh_with(
    engine: &Engine,
    name: &AccountName,
    trigger: Trigger,
    skip: Skip,
    seen: Option<u64>,
) -> Result<(), EngineError> {
    let account = engine.account(name)?;
    if engine.mode() == Mode::Observer {
        return Err(EngineError::usage(
            name,
            "another Tokenwarden engine is running and refreshes this account",
        ));
    }
    // What the journal holds from the last run is newer than what the keychain has.
    engine.shared.journal.wait().await;
    let gate = engine.with_slot(name, |s| s.gate.clone())?;
    let _turn = gate.lock().await;
    if crate::engine::account::reading::is_unread(engine, name)? {
        // Not read from the keychain yet (or a read failed): what it holds decides.
        crate::engine::account::reading::reread(engine, name).await?;
    }
    if let Some(seen) = seen {
        let shared = engine.with_slot(name, |s| {
            (s.attempts > seen)
                .then(|| s.last_outcome.clone())
                .flatten()
        })?;
        if let Some(outcome) = shared {
            return outcome.map_err(EngineError::from);
        }
    }
    if can_skip(engine, name, &skip)? {
        return Ok(());
    }
    admission::admit(engine, &account, trigger)?;
    // Without a running scheduler (a CLI command), a dependency may have lapsed: refresh
    // it first so that this fetch never uses a dead token.
    for up in &account.upstream {
        if engine.valid_token(up, UPSTREAM_MARGIN)?.is_none() {
            let skip = Skip::IfValidFor(UPSTREAM_MARGIN);
            Box::pin(refresh_with(engine, up, Trigger::Dependency, skip, None)).await?;
        }
    }
    let no_tokens = engine.with_slot(name, |s| s.state.tokens().is_none())?;
    if no_tokens && account.provider.needs_consent() {
        // Nothing to refresh and nothing failed: not a refresh attempt worth logging.
        return Err(RefreshError::NotConnected {
            account: name.clone(),
        }
        .into());
    }
    let (current, generation, due) = engine.update(name, |s| {
        let due = s.state.next_at();
        s.state = std::mem::replace(&mut s.state, AccountState::NotConnected).begin_refresh();
        if trigger == Trigger::Rejected {
            s.report_refreshes.push_back(Instant::now());
        }
        (s.state.tokens().cloned(), s.generation, due)
    })?;
    let started = Instant::now();
    // In a fleet, only the holder of the account's lease fetches.
    let turn = turns::fleet_turn(engine, name, current.as_ref()).await;
    if let Ok(Some(Turn::Taken)) = turn {
        return settle(engine, name, Ok(()), false);
    }
    // The marker goes out just before the request does (a turn that failed sent nothing).
    let (_lease, cut_off, fetched) = match turn {
        Err(e) => (None, false, Err(e)),
        Ok(lease) => {
            let cut_off = engine.shared.inflight.begin(name);
            let fetched = fetch(engine, &account, current.as_ref(), trigger, due).await;
            (lease, cut_off, fetched)
        }
    };
    let fetched = match fetched {
        Err(RefreshError::Rejected {
            account: a,
            provider,
            code,
        }) if cut_off && current.as_ref().is_some_and(|t| t.refresh.is_some()) => {
            Err(RefreshError::Interrupted {
                account: a,
                provider,
                code,
            })
        }
        // A clock that is off stays off: retried once, then left for the user.
        Err(skew @ RefreshError::ClockSkew { .. }) if skewed_last_time(engine, name) => {
            Err(skew.repeated())
        }
        other => other,
    };
    let result = match fetched {
        Ok(issued) => {
            // The answer is in: from here until it is durable, a crash loses it.
            let received = Instant::now();
            let set = issued
                .with_refresh_lifetime(account.refresh_lifetime)
                .into_set(current.as_ref());
            // The in-flight marker ends once the set is durable (see `commit`).
            commit::commit(
                engine,
                &account,
                set,
                generation,
                trigger,
                (started, received),
            )
            .await
        }
        Err(error) => {
            if !error.is_transient() {
                // Refused: nothing was rotated, and a refusal now says what it is. A
                // transient failure may have lost an answer: the marker stays.
                engine.shared.inflight.end(name);
            }
            commit::keep_rotated(engine, &account, current.as_ref(), &error, generation).await;
            commit::fail(engine, &account, error, trigger, started)
        }
    };
    settle(engine, name, result, true)
}

/// Ends an attempt: its outcome is shared with the callers that waited for it, and a
/// success refreshes the accounts that use this one's token when `dependents` (not when
/// another host refreshed: its dependents are that host's to refresh).
fn settle(
    engine: &Engine,
    name: &AccountName,
    result: Result<(), EngineError>,
    dependents: bool,
) -> Result<(), EngineError> {
    let shared = match &result {
        Ok(()) | Err(EngineError::Unsaved { .. }) => Ok(()),
        Err(EngineError::Refresh(e)) => Err(e.clone()),
        Err(other) => Err(RefreshError::Setup {
            account: name.clone(),
            what: other.to_string(),
        }),
    };
    let ok = shared.is_ok();
    engine.with_slot(name, |s| {
        s.attempts += 1;
        s.last_outcome = Some(shared);
    })?;
    if ok && dependents {
        refresh_dependents(engine, name);
    }
    engine.shared.wake.notify_one();
    result
}

/// Whether the account's last attempt ended in a clock skew (a user's reload or new
/// secret forgets it, so the next one is retried again).
fn skewed_last_time(engine: &Engine, name: &AccountName) -> bool {
    engine
        .with_slot(name, |s| {
            matches!(s.last_outcome, Some(Err(RefreshError::ClockSkew { .. })))
        })
        .unwrap_or(false)
}

fn can_skip(engine: &Engine, name: &AccountName, skip: &Skip) -> Result<bool, EngineError> {
    Ok(match skip {
        Skip::Never => false,
        Skip::IfValidFor(min_valid) => engine.valid_token(name, *min_valid)?.is_some(),
        Skip::UnlessCurrent(reported) => {
            engine.with_slot(name, |s| !s.holds_current(reported.expose()))?
        }
    })
}

/// Gathers what the provider needs (client secret, upstream tokens) and fetches.
async fn fetch(
    engine: &Engine,
    account: &Account,
    current: Option<&TokenSet>,
    trigger: Trigger,
    due: Option<Deadline>,
) -> Result<provider::Issued, RefreshError> {
    let name = &account.name;
    if account.provider.needs_consent() && current.and_then(|c| c.refresh.as_ref()).is_none() {
        return Err(RefreshError::NotConnected {
            account: name.clone(),
        });
    }
    let secret = match client_secret(engine, account).await {
        Ok(None) if account.provider.needs_secret() => {
            return Err(RefreshError::MissingSecret {
                account: name.clone(),
            })
        }
        Ok(secret) => secret,
        Err(e) => {
            let store = match &e {
                EngineError::Store(e) => e.backing.clone(),
                _ => engine
                    .shared
                    .keychain
                    .backing(&SecretKey::ClientSecret(name.clone())),
            };
            return Err(RefreshError::KeychainUnavailable {
                account: name.clone(),
                what: e.to_string(),
                store,
            });
        }
    };
    let upstream = upstream_tokens(engine, account);
    let request = request(engine, account, secret.as_ref(), current, upstream.as_ref());
    let per_host = engine.config().per_host;
    let _turn = engine
        .shared
        .hosts
        .turn(&account.provider.host(), per_host)
        .await;
    if let (Trigger::Scheduled, Some(due)) = (trigger, due) {
        let late = crate::engine::clock::now()
            .duration_since(due.time())
            .unwrap_or_default();
        engine
            .shared
            .metrics
            .lateness_seconds
            .observe(late.as_secs_f64());
    }
    // The wait for a turn may have outlasted this host's lease in a fleet.
    turns::confirm_lease(engine, name).await?;
    quota::count_fetch(engine, account).await;
    account.provider.fetch(&request).await
}

/// The one place a [`FetchRequest`] is put together.
pub(crate) fn request<'a>(
    engine: &'a Engine,
    account: &'a Account,
    client_secret: Option<&'a Secret>,
    current: Option<&'a TokenSet>,
    upstream: Option<&'a HashMap<AccountName, Secret>>,
) -> FetchRequest<'a> {
    FetchRequest {
        account: &account.name,
        provider: &account.provider_name,
        client_secret,
        current,
        upstream: upstream.unwrap_or(&NO_UPSTREAM),
        http: &engine.shared.http,
    }
}

/// The account's client secret from the keychain, when its provider uses one.
pub(crate) async fn client_secret(
    engine: &Engine,
    account: &Account,
) -> Result<Option<Secret>, EngineError> {
    if !account.provider.needs_secret() {
        return Ok(None);
    }
    let name = &account.name;
    // The store is the truth; the copy in memory (like the tokens themselves) keeps
    // refreshes going while the store is away, and goes back in if a shared store lost it.
    let mine = || {
        engine
            .with_slot(name, |s| s.client_secret.clone())
            .ok()
            .flatten()
    };
    match engine
        .shared
        .keychain
        .client_secret_keeping(name, mine)
        .await
    {
        Ok(Kept::Restored(kept, written)) => {
            if let Err(e) = written {
                tracing::warn!(account = %name, error = %e, "cannot store the client secret again");
            }
            Ok(Some(kept))
        }
        Ok(Kept::Read(secret)) => {
            engine.with_slot(name, |s| s.client_secret = secret.clone())?;
            Ok(secret)
        }
        Err(e) => match engine.with_slot(name, |s| s.client_secret.clone())? {
            Some(kept) => {
                tracing::debug!(account = %name, error = %e, "store unreadable; using the client secret read before");
                Ok(Some(kept))
            }
            None => Err(e.into()),
        },
    }
}

/// Valid tokens of the accounts this one depends on. A dead one is left out, so a
/// dependent is never fetched with it.
fn upstream_tokens(engine: &Engine, account: &Account) -> Option<HashMap<AccountName, Secret>> {
    if account.upstream.is_empty() {
        return None;
    }
    let accounts = engine.shared.accounts.lock().expect("poisoned");
    let now = crate::engine::clock::now();
    let tokens = account
        .upstream
        .iter()
        .filter_map(|up| {
            let t = accounts.get(up)?.state.tokens()?;
            (!t.expires_at.has_passed(now + Duration::from_secs(1)))
                .then(|| (up.clone(), t.access.clone()))
        })
        .collect();
    Some(tokens)
}

/// Accounts that use this one's token are refreshed right after it changes.
fn refresh_dependents(engine: &Engine, name: &AccountName) {
    for account in &engine.config().accounts {
        if account.upstream.contains(name) {
            let owned = engine.clone();
            let dependent = account.name.clone();
            engine.shared.tasks.spawn(async move {
                let _ =
                    refresh_with(&owned, &dependent, Trigger::Dependency, Skip::Never, None).await;
            });
        }
    }
}

/// Marks a scheduled refresh's account as no longer busy when the task ends, however it
/// ends, and wakes the scheduler.
pub(crate) struct NotBusy<'a>(pub &'a Engine, pub &'a AccountName);

impl Drop for NotBusy<'_> {
    fn drop(&mut self) {
        if let Ok(mut accounts) = self.0.shared.accounts.lock() {
            accounts.change(self.1, |slot| slot.busy = false);
        }
        self.0.shared.wake.notify_one();
    }
}
