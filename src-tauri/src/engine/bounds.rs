//! Bounds on every number that comes from outside: providers' answers and headers, stored
//! token sets and the config. A provider that sends nonsense (`expires_in: 1e300`, `0`,
//! `Retry-After: 10000000000000000000`) gets a clamped value, never a panic, a date past
//! year 9999 or a hot refresh loop. The clamps live here so each limit is stated once.

use std::time::Duration;

const DAY: u64 = 24 * 3600;

/// The longest lifetime believed: ten years. A longer one is taken as ten years.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * DAY);

/// A refreshable token whose provider did not say how long it lives is refreshed as if it
/// lived this long, and shown as an estimate (a year, or forever, could serve a dead token).
pub const ESTIMATED_LIFETIME: Duration = Duration::from_secs(3600);

/// A token that cannot be refreshed and has no stated lifetime is served until a caller
/// reports it refused; its expiry is shown as an estimate this far ahead.
pub const UNREFRESHABLE_LIFETIME: Duration = Duration::from_secs(365 * DAY);

/// Never refresh on schedule sooner than this after the last token was obtained: a
/// provider answering `expires_in: 0` must not make a refresh loop.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// The longest wait a provider may ask for (Retry-After, quota resets): WeChat's daily
/// quota resets at midnight, so a day and an hour.
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(DAY + 3600);

/// The longest a consent flow waits for the user (browser or device), whoever asks.
pub const MAX_CONSENT_WAIT: Duration = Duration::from_secs(3600);

/// The most refresh-log rows one request returns.
pub const MAX_HISTORY_ROWS: usize = 1000;

/// The most bytes read from one provider answer. Real token answers are under 10 KiB.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Refreshes callers may ask for (refresh now, `min_valid`) in a row per account; after
/// that, one per `[refresh] min_interval`. A user retrying or a script's burst gets through;
/// a loop does not reach the provider.
pub const ASKED_REFRESH_BURST: u32 = 10;

/// The most API connections the config may allow at once (`[api] max_connections`).
pub const MAX_API_CONNECTIONS: usize = 16_384;

/// The most refreshes the config may allow in flight at once against one provider host
/// (`[refresh] per_host`).
pub const MAX_PER_HOST: usize = 1024;

/// The most event-stream (`/v1/events`) subscribers at once: each holds a connection for
/// as long as it likes, so they get a share of the connections, not all of them.
pub const MAX_EVENT_SUBSCRIBERS: usize = 64;

/// A lifetime in seconds as a provider stated it, bounded.
pub fn lifetime_secs(secs: u64) -> Duration {
    Duration::from_secs(secs).min(MAX_LIFETIME)
}

/// A lifetime from a JSON number (the `http` provider): `None` for what cannot be one
/// (negative, not finite), else bounded.
pub fn lifetime_f64(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(if secs >= MAX_LIFETIME.as_secs_f64() {
        MAX_LIFETIME
    } else {
        Duration::from_secs(secs as u64)
    })
}

/// A wait a provider asked for, bounded.
pub fn provider_wait(wait: Duration) -> Duration {
    wait.min(MAX_PROVIDER_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_numbers_are_bounded() {
        assert_eq!(lifetime_secs(u64::MAX), MAX_LIFETIME);
        assert_eq!(lifetime_secs(3600), Duration::from_secs(3600));
        assert_eq!(lifetime_f64(1e300), Some(MAX_LIFETIME));
        assert_eq!(lifetime_f64(9.3e18), Some(MAX_LIFETIME));
        assert_eq!(lifetime_f64(f64::INFINITY), None);
        assert_eq!(lifetime_f64(f64::NAN), None);
        assert_eq!(lifetime_f64(-1.0), None);
        assert_eq!(lifetime_f64(7200.9), Some(Duration::from_secs(7200)));
        assert_eq!(
            provider_wait(Duration::from_secs(10_000_000_000_000_000_000)),
            MAX_PROVIDER_WAIT
        );
    }
}
