//! One account's live record in the engine: its [`AccountState`], the generation that
//! every commit checks, the gate that serializes refreshes, connects and saves, and what
//! the loop guard and shared outcomes need. Also how it is shown ([`AccountView`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::Account;
use super::connect::ConnectStatus;
use super::error::Remedy;
use super::names::Deadline;
use super::provider::RefreshError;
use super::state::{AccountState, Status};
use super::views::AccountView;

/// A token set that is only in memory: its keychain write failed and is tried again.
#[derive(Clone, Debug)]
pub(super) struct Unsaved {
    pub attempt: u32,
    pub next_try: Deadline,
    pub message: String,
}

pub(super) struct Slot {
    pub account: Arc<Account>,
    pub state: AccountState,
    /// Bumped by every new token set (refresh, connect, reload) and by disconnect. A commit
    /// or save that started under another generation is stale and is dropped.
    pub generation: u64,
    pub last_refresh: Option<Deadline>,
    pub unsaved: Option<Unsaved>,
    /// A scheduled task (refresh, retry, save, re-read) is on its way.
    pub busy: bool,
    /// Refresh attempts finished so far, and how the last one ended: callers that queued
    /// behind an attempt share its outcome instead of fetching again.
    pub attempts: u64,
    pub last_outcome: Option<Result<(), RefreshError>>,
    /// The generation whose token turned out shorter-lived than a `min_valid` asked for.
    pub short_lived: Option<u64>,
    /// When refreshes caused by 401 reports happened (the loop guard's window).
    pub report_refreshes: VecDeque<SystemTime>,
    pub gate: Arc<tokio::sync::Mutex<()>>,
    pub connect: watch::Sender<ConnectStatus>,
    pub connect_cancel: Option<CancellationToken>,
    /// A permanent failure saved before a restart, applied when the keychain is first read.
    pub restored: Option<super::state::Failure>,
    /// A grant obtained by a flow that may not store it, waiting to be handed over.
    pub handoff: Option<super::secret::TokenSet>,
    /// An account that needs no consent fetches its first token by itself: once after the
    /// engine starts, and again when its secret is set; never after a disconnect.
    pub fetch_unasked: bool,
}

impl Slot {
    pub fn new(account: Arc<Account>, state: AccountState) -> Self {
        Self {
            connect: watch::channel(ConnectStatus::none(&account.name)).0,
            account,
            state,
            generation: 0,
            last_refresh: None,
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
        }
    }

    pub fn refreshed_within(&self, window: std::time::Duration) -> bool {
        self.last_refresh
            .is_some_and(|at| at.time().elapsed().unwrap_or_default() < window)
    }

    pub fn status(&self, now: SystemTime) -> Status {
        self.state.status(now)
    }

    /// What went wrong last, as shown and saved: an unsaved set, a failure, an unread keychain.
    pub fn last_error(&self) -> Option<String> {
        match (&self.unsaved, self.state.error(), &self.state) {
            (Some(u), _, _) => Some(u.message.clone()),
            (None, Some(f), _) => Some(f.message.clone()),
            (None, None, AccountState::Unread { reason, .. }) => Some(reason.clone()),
            _ => None,
        }
    }

    /// The reported token is still the current one, and was not just refreshed (a report
    /// that raced a refresh is about the old token).
    pub fn holds_current(&self, reported: &str) -> bool {
        self.state
            .tokens()
            .is_some_and(|t| t.access.same_as(reported))
            && !self.refreshed_within(super::serving::REJECT_GRACE)
    }

    pub fn view(&self, now: SystemTime) -> AccountView {
        let tokens = self.state.tokens();
        let failure = self.state.error();
        let last_error = self.last_error();
        let remedy = match (&self.unsaved, &self.state) {
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
        AccountView {
            name: self.account.name.clone(),
            provider: self.account.provider_name.clone(),
            status: self.status(now),
            expires_at: tokens.map(|t| t.expires_at),
            expiry_estimated: tokens.is_some_and(|t| t.expiry_estimated),
            last_refresh: self.last_refresh,
            last_error,
            next_refresh: self.state.next_at(),
            attempt,
            connects_with: self.account.provider.connects_with(),
            refresh_token_expires_at: tokens.and_then(|t| t.refresh_expires_at),
            unsaved: self.unsaved.is_some(),
            remedy,
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
