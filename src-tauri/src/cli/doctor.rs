//! `doctor [NAME] [--json] [--bundle FILE]`: what is wrong, and what to do, for one account or
//! all. It checks the config, the store (a write, a read and a delete), whether an engine
//! runs, and for each account its status and last error in plain words, the redirect the
//! provider must have registered, the provider's clock against ours, and when the refresh
//! token dies. `--bundle` writes the same with statuses, versions and the last 50 refresh
//! log rows to a file for an issue report: never a secret.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::backend::{running, Backend, Local};
use crate::engine::{
    lock_holder, AccountName, AccountView, Config, Context, Engine, Mode, Role, Status,
};

/// How far a provider's clock may be from ours before it is worth a word (expiries are
/// read against the answer's own `Date`, so this is about logs and tokens read elsewhere).
const CLOCK_WARNING_SECS: i64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Finding {
    /// What was checked: `config`, `store`, `engine`, or `ACCOUNT: status` and the like.
    check: String,
    level: Level,
    what: String,
    remedy: Option<String>,
}

impl Finding {
    fn new(check: impl Into<String>, level: Level, what: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            level,
            what: what.into(),
            remedy: None,
        }
    }

    fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }
}

pub async fn run(
    ctx: &Context,
    name: Option<AccountName>,
    json: bool,
    bundle: Option<&Path>,
) -> Result<()> {
    let mut findings = Vec::new();
    let config = match Config::load(&ctx.config_path) {
        Ok(config) => {
            findings.push(Finding::new(
                "config",
                Level::Ok,
                format!(
                    "{}: {} accounts",
                    ctx.config_path.display(),
                    config.accounts.len()
                ),
            ));
            Some(config)
        }
        Err(e) => {
            findings.push(
                Finding::new("config", Level::Fail, e.to_string())
                    .remedy("fix the config file at the line named"),
            );
            None
        }
    };
    if let Some(name) = &name {
        if config.as_ref().is_some_and(|c| c.account(name).is_none()) {
            anyhow::bail!("no account `{name}` in {}", ctx.config_path.display());
        }
    }
    findings.push(match lock_holder(&ctx.lock_place()) {
        Some(holder) => Finding::new(
            "engine",
            Level::Ok,
            format!("an engine runs (pid {}, {:?})", holder.pid, holder.role),
        ),
        None => Finding::new(
            "engine",
            Level::Warn,
            "no engine runs: tokens are refreshed only when a command asks for one",
        )
        .remedy("start the tray app, or `tokenwarden serve`"),
    });
    let mut views = Vec::new();
    if config.is_some() {
        let engine = Engine::open(ctx, Mode::Observer, Role::Cli).await?;
        let probe = engine.probe_store().await;
        findings.push(match &probe.error {
            None => Finding::new(
                "store",
                Level::Ok,
                format!(
                    "the {} took a write, a read and a delete in {} ms",
                    probe.store, probe.elapsed_ms
                ),
            ),
            Some(e) => Finding::new("store", Level::Fail, format!("the {}: {e}", probe.store))
                .remedy(format!(
                    "make sure the {} runs and is unlocked, then run doctor again",
                    probe.store
                )),
        });
        views = match running(ctx).await? {
            Some(api) => api.accounts().await?,
            None => Local { ctx }.accounts().await?,
        };
        views.retain(|v| name.as_ref().is_none_or(|n| *n == v.name));
        for view in &views {
            account_findings(&engine, view, &mut findings).await;
        }
        engine.close().await;
    }
    if let Some(path) = bundle {
        write_bundle(ctx, path, &findings, &views).await?;
        eprintln!(
            "wrote {} (statuses, findings, versions, the last 50 log rows; no secret)",
            path.display()
        );
    }
    print(&findings, json)?;
    match findings.iter().map(|f| f.level).max() {
        Some(Level::Fail) => Err(super::ExitWith(1).into()),
        _ => Ok(()),
    }
}

async fn account_findings(engine: &Engine, view: &AccountView, out: &mut Vec<Finding>) {
    let name = &view.name;
    let check = |what: &str| format!("{name}: {what}");
    let remedy = view
        .remedy
        .as_ref()
        .map(|r| super::remedy_words(r, Some(name)));
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

fn print(findings: &[Finding], json: bool) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, findings)?;
        writeln!(out)?;
        return Ok(());
    }
    for f in findings {
        let mark = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        writeln!(out, "{mark}  {:<24} {}", f.check, f.what)?;
        if let Some(r) = &f.remedy {
            writeln!(out, "      {:<24} → {r}", "")?;
        }
    }
    Ok(())
}

async fn write_bundle(
    ctx: &Context,
    path: &Path,
    findings: &[Finding],
    views: &[AccountView],
) -> Result<()> {
    let history = match running(ctx).await? {
        Some(api) => api.history(None, 50).await?,
        None => Local { ctx }.history(None, 50).await?,
    };
    // The config holds no secret (they live in the store); it goes in as written.
    let config = std::fs::read_to_string(&ctx.config_path).unwrap_or_default();
    let bundle = serde_json::json!({
        "tokenwarden": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "config_path": ctx.config_path,
        "config": config,
        "findings": findings,
        "accounts": views,
        "history": history,
    });
    let text = serde_json::to_vec_pretty(&bundle)?;
    crate::engine::replace_private_file(path, &text, 0o600)
        .with_context(|| format!("writing the bundle {}", path.display()))
}
