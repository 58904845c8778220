//! The engine's "now" for every deadline: the wall clock, but never behind where the
//! monotonic clock says it must be. Token expiries are wall-clock dates (providers and the
//! keychain speak in them), so a clock stepped back an hour would make an expired token look
//! valid for another hour. Here time keeps counting from the last reading at the monotonic
//! rate at least, and jumps forward with the wall clock (a forward step, or a suspended
//! laptop, whose monotonic clock stood still while its tokens aged). The error is always
//! toward "later": a token may be refreshed early, never served late.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Steps back smaller than this are clock slew and NTP noise, not worth a log line.
const NOTED_STEP: Duration = Duration::from_secs(2);

/// A never-decreasing wall clock fed by readings of both clocks.
pub struct Steady {
    state: Mutex<State>,
}

struct State {
    /// The last "now" given, and the monotonic reading it went with.
    last: Option<(SystemTime, Instant)>,
    /// How far behind the wall clock was when that was last logged (one line per step).
    noted: Duration,
}

impl Steady {
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                last: None,
                noted: Duration::ZERO,
            }),
        }
    }

    /// "Now", given a reading of the wall clock and of the monotonic clock taken together.
    pub fn observe(&self, wall: SystemTime, mono: Instant) -> SystemTime {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = match state.last {
            None => wall,
            Some((then, at)) => {
                let counted = then
                    .checked_add(mono.saturating_duration_since(at))
                    .unwrap_or(then);
                let behind = counted.duration_since(wall).unwrap_or_default();
                if behind >= state.noted + NOTED_STEP {
                    tracing::warn!(
                        seconds = behind.as_secs(),
                        "the system clock went back; token deadlines keep counting from before (tokens may be refreshed early, never served late)"
                    );
                    state.noted = behind;
                } else if behind < NOTED_STEP {
                    state.noted = Duration::ZERO;
                }
                wall.max(counted)
            }
        };
        state.last = Some((now, mono));
        now
    }
}

impl Default for Steady {
    fn default() -> Self {
        Self::new()
    }
}

static CLOCK: Steady = Steady::new();

/// The engine's current time (see the module comment).
pub fn now() -> SystemTime {
    CLOCK.observe(SystemTime::now(), Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_clock_stepped_back_does_not_turn_time_back() {
        let clock = Steady::new();
        let (t0, m0) = (SystemTime::UNIX_EPOCH + 1000 * H, Instant::now());
        assert_eq!(clock.observe(t0, m0), t0);
        // Ten seconds later the wall clock is stepped back an hour.
        assert_eq!(clock.observe(t0 + 10 * S - H, m0 + 10 * S), t0 + 10 * S);
        // And time keeps counting from there.
        assert_eq!(clock.observe(t0 + 20 * S - H, m0 + 20 * S), t0 + 20 * S);
    }

    #[test]
    fn a_clock_stepped_forward_or_a_suspend_moves_time_forward() {
        let clock = Steady::new();
        let (t0, m0) = (SystemTime::UNIX_EPOCH + 1000 * H, Instant::now());
        clock.observe(t0, m0);
        // Suspended for an hour: the monotonic clock moved one second.
        assert_eq!(clock.observe(t0 + H + S, m0 + S), t0 + H + S);
        // A wrong step forward, then corrected back: never behind the latest reading, so
        // a token obtained in between is not served past its real expiry.
        assert_eq!(clock.observe(t0 + H + 2 * S, m0 + 2 * S), t0 + H + 2 * S);
        assert_eq!(clock.observe(t0 + 3 * S, m0 + 3 * S), t0 + H + 3 * S);
    }

    #[test]
    fn absurd_readings_do_not_panic() {
        let clock = Steady::new();
        let m0 = Instant::now();
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        clock.observe(far, m0);
        assert_eq!(clock.observe(SystemTime::UNIX_EPOCH, m0 + S), far + S);
    }
}
