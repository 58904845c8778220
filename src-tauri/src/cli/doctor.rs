//! `doctor [NAME] [--json] [--bundle FILE]`: what is wrong, and what to do, for one account or
//! all. It checks the config, the store (a write, a read and a delete), whether an engine
//! runs, and for each account its status and last error in plain words, the redirect the
//! provider must have registered, the provider's clock against ours, and when the refresh
//! token dies. `--bundle` writes the same with statuses, versions and the last 50 refresh
//! log rows to a file for an issue report: never a secret.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::backend::{running, Backend, Local};
use crate::engine::{
    lock_holder, private_dir, AccountName, AccountView, Config, Context, Engine, Finding, Level,
    Mode, Role,
};

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
    // The engine refuses to start in a place others could tamper with: say which, and why.
    let mut places_ok = true;
    let lock_dir = ctx.lock_place().dir;
    let mut dirs = vec![("data dir", ctx.data_dir.clone())];
    if lock_dir != ctx.data_dir {
        dirs.push(("lock dir", lock_dir));
    }
    for (what, dir) in dirs {
        findings.push(match private_dir(&dir) {
            Ok(()) => Finding::new(what, Level::Ok, format!("{}: yours alone", dir.display())),
            Err(e) => {
                places_ok = false;
                Finding::new(what, Level::Fail, e)
            }
        });
    }
    let mut views = Vec::new();
    if config.is_some() && places_ok {
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
            let remedy = view
                .remedy
                .as_ref()
                .map(|r| super::remedy_words(r, Some(&view.name)));
            findings.extend(engine.diagnose(view, remedy).await);
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
