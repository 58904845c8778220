//! One account's live record in the engine: its [`AccountState`], the generation that
//! every commit checks, the gate that serializes refreshes, connects and saves, and what
//! the loop guard and shared outcomes need. Also how it is shown ([`AccountView`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::account::state::{AccountState, Due, Status};
use crate::engine::account::views::AccountView;
use crate::engine::bounds;
use crate::engine::config::Account;
use crate::engine::connect::status::ConnectStatus;
use crate::engine::error::remedy::Remedy;
use crate::engine::history::Trigger;
use crate::engine::names::Deadline;
use crate::engine::provider::RefreshError;

/// A token refreshed this recently is not refreshed again because a client reports it
/// rejected: reports racing the refresh that replaced it just get the new token.
pub(crate) const REJECT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the scheduler starts for an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    Refresh(Trigger),
    Save,
    Reread,
}

/// A token set that is not in the keychain yet: its write failed and is tried again.
#[derive(Clone, Debug)]
pub(crate) struct Unsaved {
    pub attempt: u32,
    pub next_try: Deadline,
    pub message: String,
    /// The set's sequence number, which its keychain write carries (`journal::seq`).
    pub seq: u64,
    /// The token journal holds it: a crash or an exit does not lose it.
    pub journaled: bool,
    /// Replayed from the journal at start: the keychain's set is read first, in case it
    /// is newer after all (written by something that does not journal).
    pub check_stored: bool,
}

pub(crate) struct Slot {
    pub account: Arc<Account>,
    pub state: AccountState,
    /// Bumped by every new token set (refresh, connect, reload) and by disconnect. A commit
    /// or save that started under another generation is stale and is dropped.
    pub generation: u64,
    pub last_refresh: Option<Deadline>,
    /// The same moment by the monotonic clock, when this process obtained the token.
    pub refreshed_at: Option<std::time::Instant>,
    /// The client secret as last read from the keychain (refreshes go on while it is away).
    pub client_secret: Option<crate::engine::secret::Secret>,
    /// Refresh attempts callers may still ask for (refresh now, `min_valid`).
    pub asks: Allowance,
    pub unsaved: Option<Unsaved>,
    /// A scheduled task (refresh, retry, save, re-read) is on its way.
    pub busy: bool,
    /// Refresh attempts finished so far, and how the last one ended: callers that queued
    /// behind an attempt share its outcome instead of fetching again.
    pub attempts: u64,
    pub last_outcome: Option<Result<(), RefreshError>>,
    /// The generation whose token turned out shorter-lived than a `min_valid` asked for.
    pub short_lived: Option<u64>,
    /// When refreshes caused by 401 reports happened (the loop guard's window), by the
    /// monotonic clock.
    pub report_refreshes: VecDeque<std::time::Instant>,
    pub gate: Arc<tokio::sync::Mutex<()>>,
    pub connect: watch::Sender<ConnectStatus>,
    pub connect_cancel: Option<CancellationToken>,
    /// A permanent failure saved before a restart, applied when the keychain is first read.
    pub restored: Option<crate::engine::account::state::Failure>,
    /// A grant obtained by a flow that may not store it, waiting to be handed over.
    pub handoff: Option<crate::engine::secret::TokenSet>,
    /// An account that needs no consent fetches its first token by itself: once after the
    /// engine starts, and again when its secret is set; never after a disconnect.
    pub fetch_unasked: bool,
    /// The earliest entry this slot has in the deadline queue (see `deadlines`).
    pub queued: Option<SystemTime>,
    /// A digest of the state row last saved for this account (see [`Slot::row_to_save`]).
    pub saved_row: u64,
}

/// Tells state rows apart without keeping their text: a collision only skips one save of a
/// row, which the next change writes.
pub(crate) fn row_digest(
    status: &str,
    last_error: Option<&str>,
    last_refresh: Option<Deadline>,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (status, last_error, last_refresh.map(|d| d.unix_millis())).hash(&mut hasher);
    hasher.finish().max(1)
}

/// A bucket of refreshes callers may ask for: [`bounds::ASKED_REFRESH_BURST`] at most,
/// one more each `min_interval` (by the monotonic clock).
#[derive(Debug)]
pub(crate) struct Allowance {
    left: f64,
    at: Option<std::time::Instant>,
}

impl Default for Allowance {
    fn default() -> Self {
        Self {
            left: f64::from(bounds::ASKED_REFRESH_BURST),
            at: None,
        }
    }
}

impl Allowance {
    /// Takes one ask; `Err(wait)` until the next one is allowed.
    pub fn take(
        &mut self,
        every: std::time::Duration,
        now: std::time::Instant,
    ) -> Result<(), std::time::Duration> {
        let burst = f64::from(bounds::ASKED_REFRESH_BURST);
        if every.is_zero() {
            return Ok(());
        }
        if let Some(at) = self.at {
            let earned = now.saturating_duration_since(at).as_secs_f64() / every.as_secs_f64();
            self.left = (self.left + earned).min(burst);
        }
        self.at = Some(now);
        if self.left >= 1.0 {
            self.left -= 1.0;
            Ok(())
        } else {
            Err(every.mul_f64(1.0 - self.left))
        }
    }
}

impl Slot {
    pub fn new(account: Arc<Account>, state: AccountState) -> Self {
        Self {
            connect: watch::channel(ConnectStatus::none(&account.name)).0,
            account,
            state,
            generation: 0,
            last_refresh: None,
            refreshed_at: None,
            client_secret: None,
            asks: Allowance::default(),
            unsaved: None,
            busy: false,
            attempts: 0,
            last_outcome: None,
            short_lived: None,
            report_refreshes: VecDeque::new(),
            gate: Arc::new(tokio::sync::Mutex::new(())),
            connect_cancel: None,
            handoff: None,
            restored: None,
            fetch_unasked: true,
            queued: None,
            saved_row: 0,
        }
    }

    /// The state row to save now: its status, last error and last refresh, or `None` when
    /// that is the row saved last. A restart reads every set back unchanged; writing 100,000
    /// rows that say what they said before cost it seconds of commits (BENCHMARKS.md §5).
    pub fn row_to_save(&mut self, status: Status) -> Option<(Option<String>, Option<Deadline>)> {
        let last_error = self.last_error();
        let row = row_digest(status.as_str(), last_error.as_deref(), self.last_refresh);
        if row == self.saved_row {
            return None;
        }
        self.saved_row = row;
        Some((last_error, self.last_refresh))
    }

    /// What the scheduler starts for this account next, and when: its unsaved set's next
    /// write (the newest grant is saved before anything refreshes it), its refresh, retry or
    /// re-read, or at once a first fetch nobody asked for. `None` while a scheduled task runs
    /// or nothing is planned.
    pub fn next_work(&self) -> Option<(SystemTime, Work)> {
        if self.busy {
            return None;
        }
        if let Some(unsaved) = &self.unsaved {
            return Some((unsaved.next_try.time(), Work::Save));
        }
        match self.state.due() {
            Some(Due::Refresh(at)) => Some((at.time(), Work::Refresh(Trigger::Scheduled))),
            Some(Due::Retry(at)) => Some((at.time(), Work::Refresh(Trigger::Retry))),
            Some(Due::Reread(at)) => Some((at.time(), Work::Reread)),
            None if self.fetches_unasked() => {
                Some((SystemTime::UNIX_EPOCH, Work::Refresh(Trigger::Startup)))
            }
            None => None,
        }
    }

    /// When the scheduler should next look at this account (see [`Slot::next_work`]).
    pub fn wake_at(&self) -> Option<SystemTime> {
        self.next_work().map(|(at, _)| at)
    }

    /// An account that needs no consent is fetched once at start (and again when its
    /// secret is set); one that does waits for the user.
    fn fetches_unasked(&self) -> bool {
        matches!(self.state, AccountState::NotConnected)
            && !self.account.provider.needs_consent()
            && self.fetch_unasked
    }

    /// The expiry of the token held, which changes exactly when a new token arrives.
    pub fn token_expiry(&self) -> Option<Deadline> {
        self.state.tokens().map(|t| t.expires_at)
    }

    /// How long ago the last token was obtained: by the monotonic clock when this process
    /// obtained it (a clock stepped either way changes nothing), else by the wall clock from
    /// the saved time, and unknown when that lies in the future.
    pub fn since_refresh(&self) -> Option<std::time::Duration> {
        match self.refreshed_at {
            Some(at) => Some(at.elapsed()),
            None => self
                .last_refresh
                .and_then(|at| crate::engine::clock::now().duration_since(at.time()).ok()),
        }
    }

    pub fn refreshed_within(&self, window: std::time::Duration) -> bool {
        self.since_refresh().is_some_and(|since| since < window)
    }

    /// Records a token obtained now.
    pub fn mark_refreshed(&mut self, now: SystemTime) {
        self.last_refresh = Some(Deadline::at(now));
        self.refreshed_at = Some(std::time::Instant::now());
    }

    pub fn status(&self, now: SystemTime) -> Status {
        self.state.status(now)
    }

    /// What went wrong last, as shown and saved: an unsaved set, a failure, an unread keychain.
    pub fn last_error(&self) -> Option<String> {
        match (&self.unsaved, self.state.error(), &self.state) {
            (Some(u), _, _) => Some(u.message.clone()),
            (None, Some(f), _) => Some(f.message.clone()),
            // The first read is under way, not failed: nothing has gone wrong yet.
            (
                None,
                None,
                AccountState::Unread {
                    reason, attempt, ..
                },
            ) if *attempt > 0 => Some(reason.clone()),
            _ => None,
        }
    }

    /// The reported token is still the current one, and was not just refreshed (a report
    /// that raced a refresh is about the old token).
    pub fn holds_current(&self, reported: &str) -> bool {
        self.state
            .tokens()
            .is_some_and(|t| t.access.same_as(reported))
            && !self.refreshed_within(REJECT_GRACE)
    }

    pub fn view(&self, now: SystemTime) -> AccountView {
        let tokens = self.state.tokens();
        let failure = self.state.error();
        let last_error = self.last_error();
        let remedy = match (&self.unsaved, &self.state) {
            (None, AccountState::Unread { attempt: 0, .. }) => None,
            (Some(_), _) | (None, AccountState::Unread { .. }) => Some(Remedy::UnlockKeychain),
            (None, AccountState::NotConnected) => self.account.first_step(),
            (None, AccountState::Retrying { next_try, .. }) => failure
                .and_then(|f| f.remedy.clone())
                .or(Some(Remedy::WaitUntil { until: *next_try })),
            _ => failure.and_then(|f| f.remedy.clone()),
        };
        let attempt = match &self.state {
            AccountState::Retrying { attempt, .. } | AccountState::Unread { attempt, .. } => {
                *attempt
            }
            _ => 0,
        };
        let status = self.status(now);
        AccountView {
            name: self.account.name.clone(),
            provider: self.account.provider_name.clone(),
            status,
            severity: status.severity(),
            expires_at: tokens.map(|t| t.expires_at),
            can_copy: self.state.servable(now, Duration::ZERO).is_some(),
            expiry_estimated: tokens.is_some_and(|t| t.expiry_estimated),
            last_refresh: self.last_refresh,
            last_error,
            next_refresh: self.state.next_at(),
            attempt,
            connects_with: self.account.provider.connects_with(),
            refresh_token_expires_at: tokens.and_then(|t| self.account.reconnect_by(t)),
            unsaved: self.unsaved.is_some(),
            remedy,
            // The engine adds it: the count is kept for the appid, not the slot.
            quota: None,
        }
    }
}

impl Account {
    /// What a user does first to connect this account (nothing, for one that only waits
    /// for another account's token).
    pub fn first_step(&self) -> Option<Remedy> {
        if self.provider.needs_consent() {
            Some(Remedy::Reconnect)
        } else if self.provider.needs_secret() {
            Some(Remedy::SetSecret)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use super::{Allowance, Slot};
    use crate::engine::account::state::{AccountState, Episode, Failure, Severity, Status};
    use crate::engine::bounds::ASKED_REFRESH_BURST;
    use crate::engine::config::Config;
    use crate::engine::names::Deadline;
    use crate::engine::secret::{Secret, TokenSet};

    /// What every front end reads for each state: the tray's icon and Copy entry, the
    /// window's badge, summary and Copy button, and the JSON of `list --json` and
    /// `GET /v1/accounts` all come from these two fields, so they agree for every status.
    #[test]
    fn every_status_has_one_severity_and_copy_is_offered_exactly_when_a_token_is_served() {
        let text = "[[account]]\nname = \"fb\"\nprovider = \"fitbit-legacy\"\nclient_id = \"c\"\nredirect_uri = \"http://127.0.0.1:9/cb\"\n";
        let config = Config::parse(std::path::Path::new("t.toml"), text).unwrap();
        let account = Arc::clone(&config.accounts[0]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let tokens = |left: i64| TokenSet {
            access: Secret::new("tw-canary-view-31c"),
            refresh: Some(Secret::new("r")),
            token_type: "Bearer".into(),
            scope: None,
            expires_at: Deadline::from_unix(2_000_000_000 + left),
            obtained_at: Deadline::from_unix(2_000_000_000 - 3600),
            refresh_expires_at: None,
            expiry_estimated: false,
        };
        let valid = || Some(tokens(600));
        let gone = || Some(tokens(-1));
        let later = Deadline::at(now + Duration::from_secs(60));
        let error = || Failure {
            code: "x".into(),
            message: "x".into(),
            remedy: None,
        };
        use Severity::*;
        #[rustfmt::skip]
        let cases = [
            (AccountState::NotConnected, Status::NotConnected, Idle, false),
            (AccountState::unread(now), Status::Refreshing, Busy, false),
            (AccountState::Unread { attempt: 2, next_try: later, reason: "locked".into() }, Status::Retrying, Attention, false),
            (AccountState::Fresh { tokens: tokens(600), refresh_at: later }, Status::Fresh, Fine, true),
            (AccountState::Fresh { tokens: tokens(0), refresh_at: later }, Status::Expired, Bad, false),
            (AccountState::Refreshing { tokens: valid(), episode: Episode::Healthy }, Status::Refreshing, Busy, true),
            (AccountState::Refreshing { tokens: None, episode: Episode::Healthy }, Status::Refreshing, Busy, false),
            (AccountState::Retrying { tokens: valid(), attempt: 1, next_try: later, error: error() }, Status::Retrying, Attention, true),
            (AccountState::Retrying { tokens: gone(), attempt: 3, next_try: later, error: error() }, Status::Retrying, Attention, false),
            (AccountState::NeedsReconnect { tokens: valid(), error: error() }, Status::NeedsReconnect, Bad, true),
            (AccountState::NeedsReconnect { tokens: None, error: error() }, Status::NeedsReconnect, Bad, false),
        ];
        let mut seen = Vec::new();
        for (state, status, severity, can_copy) in cases {
            let case = format!("{state:?}");
            let served = state.servable(now, Duration::ZERO).is_some();
            let view = Slot::new(Arc::clone(&account), state).view(now);
            assert_eq!(view.status, status, "{case}");
            assert_eq!(view.status.severity(), severity, "{case}");
            assert_eq!(view.severity, severity, "{case}");
            assert_eq!(view.can_copy, can_copy, "{case}");
            assert_eq!(
                served, can_copy,
                "Copy is offered exactly when serving would: {case}"
            );
            let json = serde_json::to_value(&view).unwrap();
            assert_eq!(json["severity"], serde_json::to_value(severity).unwrap());
            assert_eq!(json["can_copy"], can_copy);
            assert!(!json.to_string().contains("tw-canary-view-31c"), "{json}");
            seen.push(status);
        }
        assert!(Status::ALL.iter().all(|s| seen.contains(s)), "{seen:?}");
        assert!(Idle < Fine && Fine < Busy && Busy < Attention && Attention < Bad);
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let every = Duration::from_secs(30);
        let mut asks = Allowance::default();
        let t0 = Instant::now();
        for i in 0..ASKED_REFRESH_BURST {
            assert_eq!(asks.take(every, t0), Ok(()), "ask {i}");
        }
        assert_eq!(asks.take(every, t0), Err(every));
        let half = t0 + every / 2;
        assert_eq!(asks.take(every, half), Err(every / 2));
        assert_eq!(asks.take(every, t0 + every), Ok(()));
        assert!(asks.take(every, t0 + every).is_err());
        // A long pause refills the burst, no more.
        let later = t0 + every * 1000;
        for _ in 0..ASKED_REFRESH_BURST {
            assert_eq!(asks.take(every, later), Ok(()));
        }
        assert!(asks.take(every, later).is_err());
        // No interval: no limit.
        assert_eq!(asks.take(Duration::ZERO, later), Ok(()));
    }
}
