//! Copying a token: it goes from the engine to the clipboard without passing through the
//! window, marked as a secret so clipboard managers leave it out of their history (on
//! Linux `x-kde-passwordManagerHint: secret`, honoured by Klipper and others; the matching
//! hints on macOS and Windows). It is cleared after the configured delay if the clipboard
//! still holds it (the user may have copied something else meanwhile). The delay is kept by
//! the wall clock as well as the monotonic one ([`ClearAt`]): sleeps count by the monotonic
//! clock, which stands still while the machine is suspended, so a token copied before an
//! hour's suspend would otherwise sit in the clipboard for the rest of its delay after it.
//!
//! The write goes through arboard itself because tauri-plugin-clipboard-manager (which wraps
//! arboard) cannot add the hint; reads and clearing go through the plugin.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tauri::{AppHandle, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;

use crate::engine::Secret;

/// The clipboard we own. On X11 and Wayland the copied text lives only as long as its owner
/// serves it, so one owner is kept for the life of the app.
#[derive(Default)]
pub struct Copier {
    owner: Mutex<Option<arboard::Clipboard>>,
}

impl Copier {
    fn write_secret(&self, text: &str) -> Result<(), arboard::Error> {
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        let clipboard = match owner.as_mut() {
            Some(clipboard) => clipboard,
            None => owner.insert(arboard::Clipboard::new()?),
        };
        let set = clipboard.set();
        #[cfg(any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd"
        ))]
        let set = arboard::SetExtLinux::exclude_from_history(set);
        #[cfg(target_os = "macos")]
        let set = arboard::SetExtApple::exclude_from_history(set);
        #[cfg(target_os = "windows")]
        let set = arboard::SetExtWindows::exclude_from_history(set);
        set.text(text.to_owned())
    }
}

pub fn copy<R: Runtime>(
    app: &AppHandle<R>,
    copier: &Copier,
    token: &Secret,
    clear_after: Duration,
) -> Result<(), String> {
    copier
        .write_secret(token.expose())
        .map_err(|e| format!("could not write the clipboard: {e}"))?;
    if clear_after.is_zero() {
        return Ok(());
    }
    let (app, token) = (app.clone(), token.clone());
    let clear_at = ClearAt::after(clear_after, SystemTime::now(), Instant::now());
    std::thread::spawn(move || {
        while !clear_at.due(SystemTime::now(), Instant::now()) {
            std::thread::sleep(clear_at.nap(Instant::now()));
        }
        let still_ours = app
            .clipboard()
            .read_text()
            .is_ok_and(|text| token.same_as(&text));
        if still_ours {
            if let Err(e) = app.clipboard().clear() {
                tracing::warn!(error = %e, "could not clear the clipboard");
            }
        }
    });
    Ok(())
}

/// How often the clear timer looks at the wall clock: after a suspend, a copied token stays
/// in the clipboard at most this much past its delay.
const WALL_CHECK: Duration = Duration::from_secs(2);

/// When a copied token is cleared: once its delay has passed by either clock. The wall
/// clock goes on during a suspend, when the monotonic clock stands still; the monotonic
/// clock goes on when the wall clock is set back.
#[derive(Clone, Copy, Debug)]
struct ClearAt {
    wall: SystemTime,
    steady: Instant,
}

impl ClearAt {
    fn after(delay: Duration, wall_now: SystemTime, steady_now: Instant) -> Self {
        // A delay too large to represent is cleared at once: the safe side for a secret.
        Self {
            wall: wall_now.checked_add(delay).unwrap_or(wall_now),
            steady: steady_now.checked_add(delay).unwrap_or(steady_now),
        }
    }

    fn due(&self, wall_now: SystemTime, steady_now: Instant) -> bool {
        wall_now >= self.wall || steady_now >= self.steady
    }

    /// How long to sleep before looking at both clocks again.
    fn nap(&self, steady_now: Instant) -> Duration {
        self.steady
            .saturating_duration_since(steady_now)
            .min(WALL_CHECK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_copy_is_due_when_its_delay_has_passed_by_the_wall_clock_though_the_monotonic_one_stood_still(
    ) {
        let (wall, steady) = (SystemTime::now(), Instant::now());
        let at = ClearAt::after(MINUTE, wall, steady);
        assert!(!at.due(wall + MINUTE / 2, steady));
        // An hour's suspend: the wall clock moved on, the monotonic clock did not.
        assert!(at.due(wall + 60 * MINUTE, steady + Duration::from_secs(1)));
    }

    #[test]
    fn a_copy_is_due_by_the_monotonic_clock_when_the_wall_clock_was_set_back() {
        let (wall, steady) = (SystemTime::now(), Instant::now());
        let at = ClearAt::after(MINUTE, wall, steady);
        assert!(at.due(wall - 60 * MINUTE, steady + MINUTE));
    }

    #[test]
    fn the_timer_looks_at_the_wall_clock_every_few_seconds_and_never_sleeps_past_the_delay() {
        let steady = Instant::now();
        let at = ClearAt::after(MINUTE, SystemTime::now(), steady);
        assert_eq!(at.nap(steady), WALL_CHECK);
        let almost = steady + MINUTE - Duration::from_millis(300);
        assert_eq!(at.nap(almost), Duration::from_millis(300));
        assert_eq!(at.nap(steady + 2 * MINUTE), Duration::ZERO);
    }

    #[test]
    fn a_delay_too_large_to_represent_clears_at_once() {
        let (wall, steady) = (SystemTime::now(), Instant::now());
        let at = ClearAt::after(Duration::MAX, wall, steady);
        assert!(at.due(wall, steady));
    }
}
