//! Small types that carry meaning: account names and wall-clock deadlines.
//! Both are checked once, where they enter (config, CLI argument, URL path).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// `[a-z0-9_-]+`: safe in keychain entry names, URL paths, file names and log lines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a valid account name: use 1–64 of a-z, 0-9, `_` and `-`")]
pub struct BadAccountName(pub String);

impl AccountName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one rule for names that end up in keychain entries, paths and URLs (accounts, API
/// key labels): 1–64 of `a-z`, `0-9`, `_`, `-`.
pub fn is_plain_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl TryFrom<String> for AccountName {
    type Error = BadAccountName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if is_plain_name(&value) {
            Ok(Self(value))
        } else {
            // Quote at most a short prefix: a mistyped argument might be a pasted secret.
            Err(BadAccountName(value.chars().take(40).collect()))
        }
    }
}

impl std::str::FromStr for AccountName {
    type Err = BadAccountName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<AccountName> for String {
    fn from(name: AccountName) -> Self {
        name.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A wall-clock instant. Wall clock, not `Instant`: it survives suspend and restarts,
/// and a laptop that slept past a deadline sees it as passed on wake.
///
/// Always between the Unix epoch and the end of year 9999, by construction: providers send
/// absurd numbers (`expires_in: 1e300`, `Retry-After: 10000000000000000000`), and an instant
/// past 9999 can neither be added without overflow nor be written as RFC 3339. Every
/// constructor saturates instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(SystemTime);

/// 9999-12-31T23:59:59Z, the last instant RFC 3339 can write.
pub const LATEST_UNIX: i64 = 253_402_300_799;

impl Deadline {
    /// The latest deadline there can be: "never", as far as anything here is concerned.
    pub fn latest() -> Self {
        Self(UNIX_EPOCH + Duration::from_secs(LATEST_UNIX as u64))
    }
    pub fn at(time: SystemTime) -> Self {
        Self(time.max(UNIX_EPOCH)).min(Self::latest())
    }
    pub fn now() -> Self {
        Self::at(crate::engine::clock::now())
    }
    pub fn after(from: SystemTime, lifetime: Duration) -> Self {
        from.checked_add(lifetime)
            .map_or_else(Self::latest, Self::at)
    }
    pub fn from_unix(secs: i64) -> Self {
        Self(UNIX_EPOCH + Duration::from_secs(secs.clamp(0, LATEST_UNIX) as u64))
    }
    pub fn unix(&self) -> i64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
    pub fn unix_millis(&self) -> i64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
    pub fn from_unix_millis(ms: i64) -> Self {
        Self::at(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
    }
    /// The same instant without its fraction of a second: what the keychain keeps, so that a
    /// schedule computed from a set in memory equals one computed after reading it back.
    pub fn whole_seconds(self) -> Self {
        Self::from_unix(self.unix())
    }

    pub fn time(&self) -> SystemTime {
        self.0
    }
    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.0.duration_since(now).unwrap_or(Duration::ZERO)
    }
    pub fn has_passed(&self, now: SystemTime) -> bool {
        self.0 <= now
    }
    pub fn rfc3339(&self) -> String {
        let t = time::OffsetDateTime::from(self.0);
        let t = t.replace_nanosecond(0).unwrap_or(t);
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| self.unix().to_string())
    }
}

impl Serialize for Deadline {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(serde::de::Error::custom)?;
        Ok(Self::at(SystemTime::from(t)))
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.rfc3339())
    }
}

/// Parses "90s", "5m", "2h", "1h 30m" (humantime), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"90s\", \"5m\", \"2h\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_checked() {
        for good in ["fitbit", "weixin_jsticket", "a-1"] {
            assert!(good.parse::<AccountName>().is_ok(), "{good}");
        }
        for bad in ["", "Fitbit", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(bad.parse::<AccountName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn deadline_remaining_saturates() {
        let now = crate::engine::clock::now();
        let d = Deadline::after(now, Duration::from_secs(10));
        assert_eq!(d.remaining(now), Duration::from_secs(10));
        assert_eq!(d.remaining(now + Duration::from_secs(20)), Duration::ZERO);
        assert!(d.has_passed(now + Duration::from_secs(10)));
    }

    #[test]
    fn absurd_deadlines_saturate_and_still_format() {
        let now = crate::engine::clock::now();
        let latest = Deadline::latest();
        for d in [
            Deadline::after(now, Duration::MAX),
            Deadline::after(now, Duration::from_secs(10_000_000_000_000_000_000)),
            Deadline::after(now, Duration::from_secs(300_000_000_000)),
            Deadline::from_unix(i64::MAX),
            Deadline::from_unix_millis(i64::MAX),
        ] {
            assert_eq!(d, latest);
            assert_eq!(d.rfc3339(), "9999-12-31T23:59:59Z");
        }
        assert_eq!(Deadline::from_unix(i64::MIN).unix(), 0);
        let json = serde_json::to_string(&latest).unwrap();
        assert_eq!(serde_json::from_str::<Deadline>(&json).unwrap(), latest);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }
}
