//! Admission: every check a refresh that a caller asked for must pass before it may fetch,
//! in one place and called once, by the refresh itself under the account's gate (so a
//! refresh that finished meanwhile has already answered for the caller). Scheduled refreshes
//! pass without checks: the engine planned them within backoff, the floor and the quota.
//! * waiting: backoff or a refused grant is not overridden by a caller's need
//! * reports: 401 reports stop refreshing after a few fresh tokens were refused (loop guard)
//! * floor: a burst of asked-for refreshes, then one per `min_interval`
//! * quota: WeChat's daily allowance is kept for scheduled refreshes near its end

use std::time::{Duration, Instant};

use crate::engine::account::state::AccountState;
use crate::engine::config::Account;
use crate::engine::events::EngineEvent;
use crate::engine::history::Trigger;
use crate::engine::names::{AccountName, Deadline};
use crate::engine::refresh::quota;
use crate::engine::{Engine, EngineError};

/// The loop guard: this many refreshes caused by reports within `REPORT_WINDOW` ...
const REPORT_LIMIT: usize = 3;
/// ... and reports stop refreshing until the oldest of them leaves the window.
const REPORT_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Lets a refresh asked for by `trigger` go ahead, or says why not.
pub(crate) fn admit(
    engine: &Engine,
    account: &Account,
    trigger: Trigger,
) -> Result<(), EngineError> {
    let name = &account.name;
    if matches!(trigger, Trigger::MinValid | Trigger::Rejected) {
        // A caller's need for a token does not override backoff or a permanent failure:
        // hammering a failing provider helps no one (a manual refresh still goes through).
        check_not_waiting(engine, name)?;
    }
    if trigger == Trigger::Rejected {
        check_report_loop(engine, name)?;
    }
    if matches!(trigger, Trigger::MinValid | Trigger::Manual) {
        check_floor(engine, name)?;
    }
    // A caller's refresh on top of a valid token spends the day's WeChat allowance; one
    // for an account with nothing to serve is the fetch the engine would make anyway.
    if matches!(
        trigger,
        Trigger::MinValid | Trigger::Manual | Trigger::Rejected
    ) && engine.valid_token(name, Duration::ZERO)?.is_some()
    {
        check_quota(engine, account)?;
    }
    Ok(())
}

/// Fails when the account waits: for its backoff to pass, or for the user.
pub(crate) fn check_not_waiting(engine: &Engine, name: &AccountName) -> Result<(), EngineError> {
    let waiting = engine.with_slot(name, |s| match &s.state {
        AccountState::Retrying { next_try, .. } => {
            !next_try.has_passed(crate::engine::clock::now())
        }
        AccountState::NeedsReconnect { .. } => true,
        _ => false,
    })?;
    if waiting {
        return Err(engine.not_valid(name, Duration::ZERO));
    }
    Ok(())
}

/// Takes one of the refreshes callers may ask for, or refuses with how long to wait:
/// [`crate::engine::bounds::ASKED_REFRESH_BURST`] in a row, then one per `min_interval`. Callers that
/// share a refresh in flight take none.
pub(crate) fn check_floor(engine: &Engine, name: &AccountName) -> Result<(), EngineError> {
    engine.with_slot(name, |s| {
        let floor = s.account.schedule.min_interval;
        s.asks
            .take(floor, Instant::now())
            .map_err(|wait| EngineError::TooSoon {
                account: name.clone(),
                floor,
                wait,
            })
    })?
}

/// Refuses a report once reports have caused `REPORT_LIMIT` refreshes within the window.
fn check_report_loop(engine: &Engine, name: &AccountName) -> Result<(), EngineError> {
    let now = Instant::now();
    let tripped = engine.with_slot(name, |s| {
        while s
            .report_refreshes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= REPORT_WINDOW)
        {
            s.report_refreshes.pop_front();
        }
        (s.report_refreshes.len() >= REPORT_LIMIT).then(|| {
            let oldest = *s.report_refreshes.front().expect("at least the limit");
            let left = (oldest + REPORT_WINDOW).saturating_duration_since(now);
            (
                s.report_refreshes.len(),
                Deadline::after(crate::engine::clock::now(), left),
            )
        })
    })?;
    let Some((count, until)) = tripped else {
        return Ok(());
    };
    let error = EngineError::RejectedLoop {
        account: name.clone(),
        count,
        window_minutes: REPORT_WINDOW.as_secs() / 60,
        until,
    };
    tracing::warn!(account = %name, "{error}");
    engine.emit(EngineEvent::ReportsRefused {
        account: name.clone(),
        message: error.to_string(),
    });
    Err(error)
}

/// Refuses a refresh a caller asked for once [`quota::REFUSE_PERCENT`] of today's allowance is
/// spent: what is left keeps the scheduled refreshes going until midnight in Beijing.
pub(crate) fn check_quota(engine: &Engine, account: &Account) -> Result<(), EngineError> {
    match quota::usage(engine, account) {
        Some(usage) if usage.used >= quota::refuse_from(usage.limit) => {
            Err(EngineError::QuotaNearlySpent {
                account: account.name.clone(),
                used: usage.used,
                limit: usage.limit,
                resets_at: usage.resets_at,
            })
        }
        _ => Ok(()),
    }
}
