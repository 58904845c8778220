//! Desktop notifications from the engine's episode events: one when an account's refresh
//! first fails, one when it gives up (the user must reconnect), one when it recovers, and
//! one when 80% of a WeChat appid's daily token fetches are spent. The
//! engine already sends only those (never one per retry), so this only words them. Names and
//! reasons only, never a secret; the setting turns them off.

use tauri::{AppHandle, Runtime};
use tauri_plugin_notification::NotificationExt;

use crate::engine::EngineEvent;

/// Title and body for an event worth a notification.
pub fn wording(event: &EngineEvent) -> Option<(String, String)> {
    match event {
        EngineEvent::RefreshFailed {
            account,
            message,
            gave_up: false,
            ..
        } => Some((
            format!("{account}: refresh failed"),
            format!("{message}. Tokenwarden keeps trying; the current token stays valid until it expires."),
        )),
        EngineEvent::RefreshFailed {
            account,
            message,
            gave_up: true,
            ..
        } => Some((
            format!("Reconnect {account}"),
            format!("{message}. Open Tokenwarden and reconnect the account."),
        )),
        EngineEvent::Recovered { account } => Some((
            format!("{account} recovered"),
            "A fresh token was obtained.".to_owned(),
        )),
        EngineEvent::KeychainWriteFailed { account, store, .. } => Some((
            format!("{account}: token not saved"),
            format!("The {store} refused the new token. It is kept in memory and saved as soon as the {store} works; do not quit meanwhile."),
        )),
        EngineEvent::ReconnectSoon { account, by } => Some((
            format!("Reconnect {account} before {by}"),
            "Its refresh token stops working then, and tokens with it. Open Tokenwarden and reconnect the account now, while nothing is broken.".to_owned(),
        )),
        EngineEvent::QuotaWarning {
            account,
            used,
            limit,
            resets_at,
        } => Some((
            format!("{account}: WeChat fetch allowance nearly spent"),
            format!("{used} of today's {limit} token fetches for this appid are spent. The count resets at {resets_at} (midnight in Beijing); past 95%, refreshes you ask for wait until then."),
        )),
        EngineEvent::AskStarted { account, .. } => Some((
            format!("A program asks for {account}'s token"),
            "Tokenwarden holds the request until you allow or deny it in its window.".to_owned(),
        )),
        _ => None,
    }
}

pub fn show<R: Runtime>(app: &AppHandle<R>, event: &EngineEvent) {
    let Some((title, body)) = wording(event) else {
        return;
    };
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(error = %e, "could not show a notification");
    }
}

/// The engine stopped doing its job and the app is about to exit (shown even when event
/// notifications are off: nothing else will tell the user).
pub fn stopped<R: Runtime>(app: &AppHandle<R>, why: &str) {
    let body = format!("{why}. Tokenwarden has exited; start it again.");
    if let Err(e) = app
        .notification()
        .builder()
        .title("Tokenwarden stopped")
        .body(body)
        .show()
    {
        tracing::warn!(error = %e, "could not show a notification");
    }
}

/// Without a tray, the first time the window is closed: where it went and how to get it back
/// (shown even when event notifications are off: it is about the app, not an account).
pub fn still_running<R: Runtime>(app: &AppHandle<R>) {
    if let Err(e) = app
        .notification()
        .builder()
        .title("Tokenwarden is still running")
        .body("Programs still get their tokens. Start Tokenwarden again from the app menu (or run `tokenwarden`) to open this window; Quit is in its Settings.")
        .show()
    {
        tracing::warn!(error = %e, "could not show a notification");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_episode_events_are_worded_and_they_name_the_account() {
        let account: crate::engine::AccountName = "fb".parse().unwrap();
        let failed = EngineEvent::RefreshFailed {
            account: account.clone(),
            code: "invalid_grant".into(),
            message: "fb: fitbit refused the grant (invalid_grant)".into(),
            first: false,
            gave_up: true,
        };
        assert_eq!(wording(&failed).unwrap().0, "Reconnect fb");
        let saved = EngineEvent::Saved {
            account: account.clone(),
        };
        assert!(wording(&saved).is_none());
        let quota = EngineEvent::QuotaWarning {
            account,
            used: 1600,
            limit: 2000,
            resets_at: crate::engine::Deadline::from_unix(1_796_313_600),
        };
        let (title, body) = wording(&quota).unwrap();
        assert!(title.starts_with("fb:"), "{title}");
        assert!(body.contains("1600 of today's 2000"), "{body}");
    }
}
