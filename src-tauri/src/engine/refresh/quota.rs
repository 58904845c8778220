//! WeChat's daily allowance of token fetches per appid: 2,000 a day on `cgi-bin/token` (and
//! 10,000 on `cgi-bin/stable_token`), reset at midnight Beijing time; past it every fetch
//! answers 45009 until the next day. Every fetch is counted here as it leaves, and the count
//! is kept in the history database, so a restart does not forget what was spent. At 80%
//! one event says so; past 95% refreshes a caller asks for are refused, so that the
//! scheduled ones that keep tokens alive still have the rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

use crate::engine::names::Deadline;
use crate::engine::provider::wechat::Endpoint;
use crate::engine::provider::Provider;
use crate::engine::Engine;

pub const TOKEN_LIMIT: u32 = 2_000;
pub const STABLE_LIMIT: u32 = 10_000;
/// Percent of the day's allowance at which the warning event is sent.
pub const WARN_PERCENT: u32 = 80;
/// Percent past which refreshes callers ask for are refused.
pub const REFUSE_PERCENT: u32 = 95;

/// What one appid may fetch on one endpoint each day: `appid` or `appid/stable`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Allowance {
    pub key: String,
    pub limit: u32,
}

impl Allowance {
    /// The allowance an account's fetches count against; `None` for providers without one.
    pub fn of(provider: &Provider) -> Option<Self> {
        let Provider::WeChat(spec) = provider else {
            return None;
        };
        Some(match spec.endpoint {
            Endpoint::Token => Self {
                key: spec.appid.clone(),
                limit: TOKEN_LIMIT,
            },
            Endpoint::Stable => Self {
                key: format!("{}/stable", spec.appid),
                limit: STABLE_LIMIT,
            },
        })
    }

    /// The count past which callers' refreshes are refused.
    #[cfg(test)]
    fn refuse_from(&self) -> u32 {
        refuse_from(self.limit)
    }
}

/// The count of a day's `limit` from which callers' refreshes are refused.
pub(crate) fn refuse_from(limit: u32) -> u32 {
    limit * REFUSE_PERCENT / 100
}

/// An allowance's state today, as the account view, `list` and the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub used: u32,
    pub limit: u32,
    /// Midnight in Beijing, when the count starts again.
    pub resets_at: Deadline,
}

/// A Beijing calendar day (`2026-12-03`) and the instant the next one starts.
pub fn beijing_day(now: SystemTime) -> (String, Deadline) {
    let beijing = UtcOffset::from_hms(8, 0, 0).expect("a valid offset");
    let local = OffsetDateTime::from(now).to_offset(beijing);
    let next = local
        .date()
        .next_day()
        .expect("not the end of time")
        .midnight()
        .assume_offset(beijing);
    let resets_at = Deadline::from_unix(next.unix_timestamp());
    (local.date().to_string(), resets_at)
}

/// Today's fetches per allowance key. Only today's counts are held: a new day starts at 0.
#[derive(Default)]
pub struct Counts {
    today: Mutex<(String, HashMap<String, u32>)>,
}

/// What counting one more fetch did.
#[derive(Debug, PartialEq, Eq)]
pub struct Counted {
    pub used: u32,
    /// This fetch reached the warning level ([`WARN_PERCENT`]): say so, once a day.
    pub warn: bool,
}

impl Counts {
    /// Starts from the counts the history holds for `day`.
    pub fn starting(day: String, counts: HashMap<String, u32>) -> Self {
        Self {
            today: Mutex::new((day, counts)),
        }
    }

    fn on<T>(&self, day: &str, f: impl FnOnce(&mut HashMap<String, u32>) -> T) -> T {
        let mut today = self.today.lock().expect("poisoned");
        if today.0 != day {
            *today = (day.to_owned(), HashMap::new());
        }
        f(&mut today.1)
    }

    pub fn used(&self, allowance: &Allowance, day: &str) -> u32 {
        self.on(day, |c| c.get(&allowance.key).copied().unwrap_or(0))
    }

    /// Takes a count made elsewhere (the fleet's) if it is higher; warns when it is exactly
    /// the warning level, which only one counter of a fleet ever returns.
    pub fn raise(&self, allowance: &Allowance, day: &str, count: u32) -> Counted {
        self.on(day, |c| {
            let used = c.entry(allowance.key.clone()).or_insert(0);
            *used = (*used).max(count);
            Counted {
                used: *used,
                warn: count == (allowance.limit * WARN_PERCENT).div_ceil(100),
            }
        })
    }

    pub fn count(&self, allowance: &Allowance, day: &str) -> Counted {
        self.on(day, |c| {
            let used = c.entry(allowance.key.clone()).or_insert(0);
            *used = used.saturating_add(1);
            let warn_at = (allowance.limit * WARN_PERCENT).div_ceil(100);
            Counted {
                used: *used,
                warn: *used == warn_at,
            }
        })
    }
}

/// Today's use of the allowance an account fetches against, if it has one.
pub(crate) fn usage(engine: &Engine, account: &crate::engine::config::Account) -> Option<Usage> {
    let allowance = Allowance::of(&account.provider)?;
    let (day, resets_at) = beijing_day(crate::engine::clock::now());
    Some(Usage {
        used: engine.shared.quota.used(&allowance, &day),
        limit: allowance.limit,
        resets_at,
    })
}

/// Counts a fetch that is about to leave, keeps the count, and says so at 80%. In a
/// fleet the allowance is the appid's whichever host fetches, so the count is Redis's
/// (and the warning comes from the one host whose fetch reached 80%).
pub(crate) async fn count_fetch(engine: &Engine, account: &crate::engine::config::Account) {
    let Some(allowance) = Allowance::of(&account.provider) else {
        return;
    };
    let (day, resets_at) = beijing_day(crate::engine::clock::now());
    let mut counted = engine.shared.quota.count(&allowance, &day);
    match engine
        .shared
        .sharing
        .count_fetch(&allowance.key, &day)
        .await
    {
        Some(Ok(shared)) => counted = engine.shared.quota.raise(&allowance, &day, shared),
        Some(Err(e)) => {
            tracing::warn!(account = %account.name, error = %e, "cannot count this fetch in the shared store; counted on this host only");
        }
        None => {}
    }
    engine
        .shared
        .log
        .save_fetches(&allowance.key, &day, counted.used);
    if counted.warn {
        tracing::warn!(account = %account.name, used = counted.used, limit = allowance.limit, "WeChat fetch allowance {WARN_PERCENT}% spent for today");
        engine.emit(crate::engine::events::EngineEvent::QuotaWarning {
            account: account.name.clone(),
            used: counted.used,
            limit: allowance.limit,
            resets_at,
        });
    }
}

/// Takes in the fleet's count of an account's allowance (another host fetched).
pub(crate) async fn take_in_fetches(engine: &Engine, account: &crate::engine::config::Account) {
    let Some(allowance) = Allowance::of(&account.provider) else {
        return;
    };
    let (day, _) = beijing_day(crate::engine::clock::now());
    if let Some(Ok(shared)) = engine.shared.sharing.fetches(&allowance.key, &day).await {
        let counted = engine.shared.quota.raise(&allowance, &day, shared);
        engine
            .shared
            .log
            .save_fetches(&allowance.key, &day, counted.used);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_day_turns_at_midnight_in_beijing() {
        // 2026-12-03T15:59:59Z is 23:59:59 in Beijing; a second later it is the 4th.
        let before = UNIX_EPOCH + Duration::from_secs(1_796_313_599);
        let (day, resets) = beijing_day(before);
        assert_eq!(day, "2026-12-03");
        assert_eq!(resets, Deadline::from_unix(1_796_313_600));
        let (day, resets) = beijing_day(before + Duration::from_secs(1));
        assert_eq!(day, "2026-12-04");
        assert_eq!(resets, Deadline::from_unix(1_796_313_600 + 86_400));
    }

    #[test]
    fn counts_warn_once_at_eighty_percent_and_start_over_each_day() {
        let allowance = Allowance {
            key: "wx1".into(),
            limit: 2_000,
        };
        let counts = Counts::starting("d1".into(), HashMap::from([("wx1".into(), 1_598)]));
        assert_eq!(
            counts.count(&allowance, "d1"),
            Counted {
                used: 1_599,
                warn: false
            }
        );
        assert!(counts.count(&allowance, "d1").warn, "1,600 is 80%");
        assert!(!counts.count(&allowance, "d1").warn, "once");
        assert_eq!(allowance.refuse_from(), 1_900);
        assert_eq!(counts.used(&allowance, "d2"), 0, "a new day");
        assert_eq!(counts.count(&allowance, "d2").used, 1);
    }
}
