//! What an absolute expiry (`expires_at`) in a provider's answer means on this machine. The
//! provider counts a token's life by its own clock, so when its clock and ours disagree the
//! date alone misleads: a provider whose clock is an hour behind hands out tokens that look
//! dead on arrival here, and one whose clock is ahead makes them look longer-lived than they
//! are. The answer's `Date` header is read from the same clock as `expires_at`, so
//! `expires_at − Date` is the lifetime the provider meant, whichever clock is off.

use std::time::{Duration, SystemTime};

use crate::engine::bounds;
use crate::engine::names::Deadline;

/// `Date` has whole seconds: the provider's clock may have been up to this much past it.
const DATE_GRAIN: Duration = Duration::from_secs(1);

/// An expiry that gives no lifetime to go by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew {
    /// How far `expires_at` is before the answer's `Date` (`by_date`), else before the
    /// time the request was sent by this machine's clock.
    pub behind: Duration,
    pub by_date: bool,
}

/// The deadline here for a token the provider says expires `at`, in an answer to a request
/// sent at `sent` (this machine's clock) that carried `date`. With a `date` before `at`, the
/// lifetime `at − date` counted from `sent` (less `Date`'s grain), bounded; without one,
/// `at` as it is while it lies ahead (bounded too). A `date` no earlier than `at`, or no
/// `date` and an `at` already past, is a [`Skew`]: the lifetime cannot be known.
pub fn deadline(
    at: Deadline,
    sent: SystemTime,
    date: Option<SystemTime>,
) -> Result<Deadline, Skew> {
    let at = at.time();
    if let Some(date) = date {
        return match at.duration_since(date) {
            Ok(lifetime) if !lifetime.is_zero() => {
                let lifetime = lifetime
                    .saturating_sub(DATE_GRAIN)
                    .min(bounds::MAX_LIFETIME);
                Ok(Deadline::after(sent, lifetime))
            }
            _ => Err(Skew {
                behind: date.duration_since(at).unwrap_or_default(),
                by_date: true,
            }),
        };
    }
    match at.duration_since(sent) {
        Ok(left) if !left.is_zero() => Ok(Deadline::after(sent, left.min(bounds::MAX_LIFETIME))),
        _ => Err(Skew {
            behind: sent.duration_since(at).unwrap_or_default(),
            by_date: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)
    }

    fn left(d: Deadline) -> u64 {
        d.time().duration_since(now()).unwrap().as_secs()
    }

    #[test]
    fn a_provider_clock_behind_gives_the_lifetime_from_its_date() {
        // Its clock is two hours slow and the token lives an hour: past here, alive there.
        let at = Deadline::at(now() - HOUR);
        let d = deadline(at, now(), Some(now() - 2 * HOUR)).unwrap();
        assert_eq!(left(d), 3599);
    }

    #[test]
    fn a_provider_clock_ahead_does_not_stretch_the_lifetime() {
        let at = Deadline::at(now() + 3 * HOUR);
        let d = deadline(at, now(), Some(now() + 2 * HOUR)).unwrap();
        assert_eq!(left(d), 3599, "an hour, not three");
    }

    #[test]
    fn without_a_date_a_future_expiry_is_taken_as_it_is() {
        let d = deadline(Deadline::at(now() + HOUR), now(), None).unwrap();
        assert_eq!(left(d), 3600);
        let far = deadline(Deadline::at(now() + 1000 * 365 * 24 * HOUR), now(), None).unwrap();
        assert_eq!(far, Deadline::after(now(), bounds::MAX_LIFETIME));
    }

    #[test]
    fn without_a_date_a_past_expiry_is_a_skew_of_how_far_it_is_past() {
        let skew = deadline(Deadline::at(now() - HOUR), now(), None).unwrap_err();
        assert_eq!(
            skew,
            Skew {
                behind: HOUR,
                by_date: false
            }
        );
        assert!(deadline(Deadline::at(now()), now(), None).is_err());
    }

    #[test]
    fn a_date_no_earlier_than_the_expiry_is_a_skew_even_if_the_expiry_is_ahead_here() {
        // Dead by the provider's own clock, though this machine's clock is behind.
        let at = Deadline::at(now() + HOUR);
        let skew = deadline(at, now(), Some(now() + 2 * HOUR)).unwrap_err();
        assert_eq!(
            skew,
            Skew {
                behind: HOUR,
                by_date: true
            }
        );
        assert!(deadline(at, now(), Some(at.time())).is_err());
    }

    #[test]
    fn an_absurd_date_far_in_the_past_is_bounded() {
        let d = deadline(Deadline::at(now()), now(), Some(SystemTime::UNIX_EPOCH)).unwrap();
        assert_eq!(d, Deadline::after(now(), bounds::MAX_LIFETIME));
    }
}
