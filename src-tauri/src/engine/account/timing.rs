//! When to refresh and how long to wait after a failure. Pure functions of times and
//! settings (jitter comes in as a parameter), so they are unit-tested exactly.

use std::time::{Duration, SystemTime};

use crate::engine::bounds;
use crate::engine::config::{RetrySettings, Schedule};
use crate::engine::names::Deadline;

const MIN_LEAD: Duration = Duration::from_secs(5 * 60);
const MAX_JITTER: Duration = Duration::from_secs(30);

/// How long before expiry to refresh: the configured value, else the larger of 20% of the
/// lifetime and 5 minutes; never more than half the lifetime (DESIGN "Refresh timing").
pub fn lead(lifetime: Duration, configured: Option<Duration>) -> Duration {
    configured
        .unwrap_or_else(|| (lifetime / 5).max(MIN_LEAD))
        .min(lifetime / 2)
}

/// When to refresh a token obtained at `obtained_at` that expires at `expires_at`.
/// `jitter` in [0, 1) moves it earlier by up to a tenth of the lead (at most 30 s), so that
/// many accounts issued together do not all refresh in the same second. Never sooner than
/// the schedule's `min_interval` after `obtained_at`, whatever lifetime the provider gave:
/// `expires_in: 0` must not become a refresh loop.
pub fn refresh_at(
    obtained_at: Deadline,
    expires_at: Deadline,
    schedule: Schedule,
    jitter: f64,
) -> SystemTime {
    let lifetime = expires_at.remaining(obtained_at.time());
    let lead = lead(lifetime, schedule.refresh_before);
    let spread = (lead / 10).min(MAX_JITTER).mul_f64(jitter.clamp(0.0, 1.0));
    let by_rule = expires_at
        .time()
        .checked_sub(lead + spread)
        .unwrap_or(obtained_at.time());
    by_rule.max(Deadline::after(obtained_at.time(), schedule.min_interval).time())
}

/// A jitter in [0, 1) fixed by the account and the token's issue time: accounts issued
/// together still spread out, and every process (the CLI, the engine, after a restart)
/// computes the same schedule.
pub fn spread(account: &str, obtained_at: Deadline) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new(); // fixed keys: the same in every process
    account.hash(&mut h);
    obtained_at.unix().hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Delay before retry number `attempt` (1-based): doubling from `initial` up to `max`,
/// ±10% jitter (`jitter` in [0, 1)), and never shorter than what the provider asked for
/// (itself capped: a provider cannot park an account for years).
pub fn backoff(
    attempt: u32,
    retry: RetrySettings,
    asked: Option<Duration>,
    jitter: f64,
) -> Duration {
    let doubled = retry
        .initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = doubled.min(retry.max);
    let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    let asked = asked.map_or(Duration::ZERO, bounds::provider_wait);
    Duration::from_secs_f64(base.as_secs_f64() * factor).max(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn lead_follows_the_rule() {
        // 8 h Fitbit token: 20% = 96 min.
        assert_eq!(lead(480 * MIN, None), 96 * MIN);
        // 2 h WeChat token: 20% = 24 min.
        assert_eq!(lead(120 * MIN, None), 24 * MIN);
        // 10 min token: 5 min floor, which is also half.
        assert_eq!(lead(10 * MIN, None), 5 * MIN);
        // 4 min token: never more than half.
        assert_eq!(lead(4 * MIN, None), 2 * MIN);
        assert_eq!(lead(60 * MIN, Some(50 * MIN)), 30 * MIN);
        assert_eq!(lead(60 * MIN, Some(MIN)), MIN);
    }

    #[test]
    fn refresh_at_is_before_expiry_by_lead_plus_jitter() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let obtained = Deadline::at(t0);
        let expires = Deadline::at(t0 + 120 * MIN);
        assert_eq!(
            refresh_at(obtained, expires, Schedule::default(), 0.0),
            t0 + 96 * MIN
        );
        // Jitter is capped at 30 s.
        assert_eq!(
            refresh_at(obtained, expires, Schedule::default(), 0.999_999),
            t0 + 96 * MIN - Duration::from_secs(30) + Duration::from_micros(30)
        );
    }

    #[test]
    fn a_zero_lifetime_is_refreshed_no_sooner_than_the_floor() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let obtained = Deadline::at(t0);
        let floor = Schedule::default().min_interval;
        assert_eq!(
            refresh_at(obtained, obtained, Schedule::default(), 0.3),
            t0 + floor
        );
        let tight = Schedule {
            refresh_before: Some(Duration::from_secs(5)),
            min_interval: Duration::from_secs(1),
        };
        let expires = Deadline::at(t0 + Duration::from_secs(8));
        assert_eq!(
            refresh_at(obtained, expires, tight, 0.0),
            t0 + Duration::from_secs(4),
            "an 8 s token with refresh_before = 5s: half its lifetime, above the floor"
        );
    }

    #[test]
    fn absurd_waits_are_capped() {
        let retry = RetrySettings {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(24 * 3600),
        };
        let huge = Some(Duration::from_secs(10_000_000_000_000_000_000));
        assert_eq!(backoff(1, retry, huge, 0.5), bounds::MAX_PROVIDER_WAIT);
        assert_eq!(
            backoff(1, retry, Some(Duration::MAX), 0.9),
            bounds::MAX_PROVIDER_WAIT
        );
        assert!(backoff(40, retry, None, 0.999) <= Duration::from_secs(24 * 3600 * 11 / 10));
    }

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let retry = RetrySettings {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let mid = |n| backoff(n, retry, None, 0.5);
        assert_eq!(
            [mid(1), mid(2), mid(3), mid(4), mid(5)].map(|d| d.as_secs()),
            [1, 2, 4, 8, 10]
        );
        assert_eq!(backoff(1, retry, None, 0.0), Duration::from_millis(900));
        assert!(backoff(1, retry, None, 0.999) < Duration::from_millis(1100));
        assert_eq!(
            backoff(1, retry, Some(Duration::from_secs(30)), 0.5),
            Duration::from_secs(30)
        );
        assert_eq!(backoff(60, retry, None, 0.5), Duration::from_secs(10));
    }
}
