//! What `doctor` finds about an account, for every front end (the CLI prints it, the window
//! shows it on the account's card): each finding with its level and, where something can be
//! done, what.

use serde::Serialize;

use crate::engine::account::state::Status;
use crate::engine::account::views::AccountView;
use crate::engine::names::AccountName;
use crate::engine::Engine;

/// How far a provider's clock may be from ours before it is worth a word (expiries are
/// read against the answer's own `Date`, so this is about logs and tokens read elsewhere).
const CLOCK_WARNING_SECS: i64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// What was checked: `config`, `store`, `engine`, or `ACCOUNT: status` and the like.
    pub check: String,
    pub level: Level,
    pub what: String,
    pub remedy: Option<String>,
}

impl Finding {
    pub fn new(check: impl Into<String>, level: Level, what: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            level,
            what: what.into(),
            remedy: None,
        }
    }

    pub fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }
}

impl Engine {
    /// The findings about one account: its status and last error in plain words (or
    /// `remedy`, the front end's wording of the view's remedy), the redirect and whether the
    /// provider knows it, the provider's clock, whether the token works, and when the
    /// refresh token dies.
    pub async fn diagnose(&self, view: &AccountView, remedy: Option<String>) -> Vec<Finding> {
        let engine = self;
        let mut out = Vec::new();
        let name = &view.name;
        let check = |what: &str| format!("{name}: {what}");
        let last = view.last_error.clone().unwrap_or_default();
        let (level, what) = match view.status {
            Status::Fresh | Status::Refreshing => (Level::Ok, "fresh".to_owned()),
            Status::NotConnected => (Level::Warn, "not connected yet".to_owned()),
            Status::Expired => (
                Level::Warn,
                "the stored token has expired; nothing refreshed it".to_owned(),
            ),
            Status::Retrying => (
                Level::Warn,
                format!("retrying after a passing failure: {last}"),
            ),
            Status::NeedsReconnect => (Level::Fail, format!("refused for good: {last}")),
        };
        let mut status = Finding::new(check("status"), level, what);
        status.remedy = explain(&last, name).or(remedy);
        out.push(status);
        if let Ok(Some(hint)) = engine.redirect_to_register(name) {
            let registered = Finding::new(
                check("redirect"),
                Level::Ok,
                format!("the provider must have registered: {hint}"),
            );
            out.push(match engine.probe_consent(name).await {
            Ok(Some(p)) if !p.accepted && p.status.is_some() => Finding::new(
                check("redirect"),
                Level::Fail,
                format!(
                    "the provider refuses the consent page for {} (HTTP {}: {})",
                    p.redirect_uri,
                    p.status.unwrap_or_default(),
                    p.said.unwrap_or_default()
                ),
            )
            .remedy(format!("register {hint} in the provider's developer console, or set `redirect_uri` to the one registered there")),
            Ok(Some(p)) if p.accepted => Finding {
                what: format!("{} (its consent page answered {})", registered.what, p.status.unwrap_or_default()),
                ..registered
            },
            _ => registered,
        });
        }
        if let Ok(clock) = engine.provider_clock(name).await {
            out.push(match (clock.skew_seconds, clock.error) {
            (Some(s), _) if s.abs() > CLOCK_WARNING_SECS => Finding::new(
                check("clock"),
                Level::Warn,
                format!("{}'s clock is {} s {} ours", clock.origin, s.abs(), if s > 0 { "ahead of" } else { "behind" }),
            )
            .remedy("check this machine's time (timedatectl); expiries are read against the provider's own Date, so refreshing is not affected"),
            (Some(s), _) => Finding::new(check("clock"), Level::Ok, format!("{}'s clock is within {} s of ours", clock.origin, s.abs().max(1))),
            (None, Some(e)) => Finding::new(check("clock"), Level::Warn, format!("could not ask {}: {e}", clock.origin)),
            (None, None) => Finding::new(check("clock"), Level::Warn, "no answer".to_owned()),
        });
        }
        if view.status != Status::NotConnected {
            if let Some(finding) = token_finding(engine, name).await {
                out.push(finding);
            }
        }
        if let Some(by) = view.refresh_token_expires_at {
            out.push(Finding::new(check("refresh token"), Level::Warn, format!("the refresh token stops working at {by}")).remedy(format!("run `tokenwarden connect {name}` before then (Google apps in \"Testing\" give 7-day refresh tokens: publish the app to keep them)")));
        }
        out
    }
}

/// One harmless call to the account's API with its token: does it work, and if not, which
/// scopes were asked and granted, and which name another site than the API's.
async fn token_finding(engine: &Engine, name: &AccountName) -> Option<Finding> {
    let check = format!("{name}: token");
    let probe = match engine.probe_token(name).await {
        Ok(Some(probe)) => probe,
        Ok(None) => return None,
        Err(e) => {
            return Some(Finding::new(
                check,
                Level::Warn,
                format!("no token to try: {e}"),
            ));
        }
    };
    let answered = match (probe.status, &probe.error) {
        (_, Some(e)) => format!("GET {} failed: {e}", probe.url),
        (Some(status), None) => format!("GET {} answered {status}", probe.url),
        (None, None) => format!("GET {} got no answer", probe.url),
    };
    if probe.works {
        return Some(Finding::new(check, Level::Ok, format!("works: {answered}")));
    }
    let granted = probe
        .scopes_granted
        .as_ref()
        .map_or("not said".to_owned(), |g| g.join(" "));
    let what = format!(
        "{answered}; scopes asked: {}; granted: {granted}",
        if probe.scopes_asked.is_empty() {
            "none".to_owned()
        } else {
            probe.scopes_asked.join(" ")
        }
    );
    let refused = matches!(probe.status, Some(401 | 403))
        || (probe.status.is_some() && probe.error.is_some());
    let remedy = match probe.foreign_scopes.first() {
        Some((scope, host)) => format!(
            "`{scope}` is a scope of {host}, not of the API this account calls ({}): use the API's own scope names in `scopes`, then `tokenwarden connect {name}`",
            url::Url::parse(&probe.url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
        ),
        None if refused => format!("the API refuses the token: make `scopes` ask for what this call needs, then `tokenwarden connect {name}` (or set `probe_url` to a call the scopes allow)"),
        None => "the API did not answer as expected: see the error, or set `probe_url` to another harmless call".to_owned(),
    };
    let level = if refused { Level::Fail } else { Level::Warn };
    Some(Finding::new(check, level, what).remedy(remedy))
}

/// What a provider's error code means and what to do, where it is knowable.
fn explain(last_error: &str, name: &AccountName) -> Option<String> {
    let has = |code: &str| last_error.contains(code);
    let words = if has("error 40164") || has("whitelist") {
        "add this machine's outgoing IP (named in the error, as WeChat saw it) to the appid's IP whitelist in the WeChat console (Development → Basic configuration)".to_owned()
    } else if has("error 40125") || has("invalid appsecret") {
        format!("the appsecret is wrong or was reset: copy it again from the WeChat console and run `tokenwarden secret set {name}`")
    } else if has("invalid_scope") {
        "the provider refused a scope: compare `scopes` with what the app may ask for (a Google scope needs the full https://www.googleapis.com/auth/… URL)".to_owned()
    } else if has("redirect_uri") {
        "the provider does not know the redirect: register the one the `redirect` finding names"
            .to_owned()
    } else if has("invalid_grant") {
        format!("the grant was revoked or has expired: run `tokenwarden connect {name}`")
    } else if has("HTTP 410") {
        "the endpoint is gone: the error says where the API moved".to_owned()
    } else {
        return None;
    };
    Some(words)
}
