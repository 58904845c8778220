//! The transitions of [`AccountState`] one by one: notices once per failure episode,
//! backoff, expiry, an unreadable keychain, a permanent failure kept across a restart.

use super::*;
use crate::engine::secret::Secret;

fn tokens(obtained: u64, lifetime: u64) -> TokenSet {
    TokenSet {
        access: Secret::new("a"),
        refresh: Some(Secret::new("r")),
        token_type: "Bearer".into(),
        scope: None,
        expires_at: Deadline::from_unix((obtained + lifetime) as i64),
        obtained_at: Deadline::from_unix(obtained as i64),
        refresh_expires_at: None,
        expiry_estimated: false,
    }
}

fn fb() -> AccountName {
    "fb".parse().unwrap()
}

fn network() -> RefreshError {
    RefreshError::Network {
        account: "fb".parse().unwrap(),
        provider: "fitbit".into(),
        detail: "connection failed".into(),
    }
}

fn refused() -> RefreshError {
    RefreshError::Rejected {
        account: "fb".parse().unwrap(),
        provider: "fitbit".into(),
        code: "invalid_grant".into(),
    }
}

const RETRY: RetrySettings = RetrySettings {
    initial: Duration::from_secs(10),
    max: Duration::from_secs(600),
};
const T0: u64 = 2_000_000_000;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_failure_episode_notifies_at_its_start_when_it_gives_up_and_on_recovery() {
    let fresh = AccountState::fresh(tokens(T0, 3600), Schedule::default(), &fb());
    let (s, n) = fresh.begin_refresh().failed(&network(), RETRY, at(T0), 0.5);
    assert_eq!(n, Some(Notice::FirstFailure));
    assert_eq!(s.status(at(T0)), Status::Retrying);
    assert_eq!(s.next_at(), Some(Deadline::at(at(T0 + 10))));
    // The retries are silent, and the backoff doubles.
    let (s, n) = s
        .begin_refresh()
        .failed(&network(), RETRY, at(T0 + 10), 0.5);
    assert_eq!(n, None);
    assert_eq!(s.next_at(), Some(Deadline::at(at(T0 + 30))));
    // Giving up is told once, as part of the same episode.
    let (s, n) = s
        .begin_refresh()
        .failed(&refused(), RETRY, at(T0 + 30), 0.5);
    assert_eq!(n, Some(Notice::GaveUp { first: false }));
    assert_eq!(s.status(at(T0 + 30)), Status::NeedsReconnect);
    assert_eq!(s.due(), None, "nothing is tried until the user acts");
    let (s, n) = s
        .begin_refresh()
        .failed(&refused(), RETRY, at(T0 + 40), 0.5);
    assert_eq!(n, None, "a manual retry that fails again is not news");
    let (s, n) = s
        .begin_refresh()
        .succeeded(tokens(T0 + 50, 3600), Schedule::default(), &fb());
    assert_eq!(n, Some(Notice::Recovered));
    assert_eq!(s.status(at(T0 + 50)), Status::Fresh);
    let (_, n) = s
        .begin_refresh()
        .succeeded(tokens(T0 + 60, 3600), Schedule::default(), &fb());
    assert_eq!(n, None, "a healthy refresh is not a recovery");
}

#[test]
fn a_permanent_first_failure_gives_up_at_once() {
    let fresh = AccountState::fresh(tokens(T0, 3600), Schedule::default(), &fb());
    let (s, n) = fresh.begin_refresh().failed(&refused(), RETRY, at(T0), 0.5);
    assert_eq!(n, Some(Notice::GaveUp { first: true }));
    // The old token stays servable until it expires.
    assert!(s.tokens().is_some());
}

#[test]
fn a_fresh_token_past_its_expiry_is_expired() {
    let s = AccountState::fresh(tokens(T0, 3600), Schedule::default(), &fb());
    assert_eq!(s.status(at(T0 + 3599)), Status::Fresh);
    assert_eq!(s.status(at(T0 + 3600)), Status::Expired);
    // 20% of an hour is 12 minutes: the refresh is due 48 minutes in, less a jitter of
    // at most a tenth of the lead that every process computes alike.
    let Some(Due::Refresh(due)) = s.due() else {
        panic!("a refresh is due")
    };
    let early = at(T0 + 48 * 60).duration_since(due.time()).unwrap();
    assert!(early <= Duration::from_secs(30), "{early:?}");
    let again = AccountState::fresh(tokens(T0, 3600), Schedule::default(), &fb());
    assert_eq!(again.due(), s.due());
}

#[test]
fn an_unreadable_keychain_backs_off_and_fetches_nothing() {
    let s = AccountState::NotConnected.unreadable("locked".into(), at(T0), 0.5);
    assert_eq!(s.due(), Some(Due::Reread(Deadline::at(at(T0 + 2)))));
    let s = s.unreadable("locked".into(), at(T0 + 2), 0.5);
    assert_eq!(s.due(), Some(Due::Reread(Deadline::at(at(T0 + 6)))));
    assert_eq!(s.status(at(T0)), Status::Retrying);
    assert!(s.tokens().is_none());
}

#[test]
fn a_restart_keeps_a_permanent_failure() {
    let s = AccountState::from_stored(
        Some(tokens(T0, 3600)),
        Some((&refused()).into()),
        Schedule::default(),
        &fb(),
    );
    assert_eq!(s.status(at(T0)), Status::NeedsReconnect);
    let s = AccountState::from_stored(None, None, Schedule::default(), &fb());
    assert_eq!(s.status(at(T0)), Status::NotConnected);
}
