//! The command line: clap definitions and one function per command. Commands that need a
//! refresh run it here under the machine's lock when no engine is running; while one runs,
//! they ask it over its local API (`client`), so that it alone refreshes.

mod client;
mod output;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::engine::api_keys::ApiKeys;
use crate::engine::lock::{self, Role};
use crate::engine::names::{parse_duration, AccountName};
use crate::engine::paths::Context;
use crate::engine::secret::Secret;
use crate::engine::secrets::{Keychain, OsKeychain};
use crate::engine::{Engine, Mode};
use client::ApiClient;

#[derive(Parser, Debug)]
#[command(
    name = "tokenwarden",
    version,
    about = "Keeps API access tokens fresh: OAuth consent, refresh before expiry, OS keychain, local API"
)]
pub struct Cli {
    /// The config file [default: $XDG_CONFIG_HOME/tokenwarden/config.toml]
    #[arg(long, global = true, env = "TOKENWARDEN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs the engine in the foreground: refreshes every account before it expires
    Serve,
    /// Lists accounts: status, expiry, last refresh
    List {
        #[arg(long)]
        json: bool,
    },
    /// Prints the current access token (never an expired one)
    Token {
        name: AccountName,
        /// Refresh first unless the token stays valid this long (e.g. 60s, 5m)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
        min_valid: Duration,
        /// Print `Authorization: Bearer …` instead of the bare token
        #[arg(long)]
        header: bool,
    },
    /// Refreshes an account's token now
    Refresh { name: AccountName },
    /// Runs the consent flow in the browser and stores the first token
    Connect {
        name: AccountName,
        /// Print the authorization URL alone on one stdout line instead of opening a browser
        #[arg(long)]
        no_browser: bool,
        /// Use the device authorization grant (RFC 8628)
        #[arg(long, conflicts_with = "no_browser")]
        device: bool,
    },
    /// Manages an account's client secret in the keychain
    Secret {
        #[command(subcommand)]
        action: SecretAction,
    },
    /// Revokes at the provider where it can and deletes the account's secrets
    Disconnect { name: AccountName },
    /// Manages API keys for the local HTTP API
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Shows the refresh history, newest first
    Log {
        name: Option<AccountName>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyAction {
    /// Creates a key and prints it once
    Create { label: String },
    /// Lists key labels and creation times (never the keys)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revokes a key: it stops working at once, also for a running engine
    Revoke { label: String },
}

#[derive(Subcommand, Debug)]
pub enum SecretAction {
    /// Reads the client secret (WeChat appsecret, OAuth client secret) from stdin
    Set { name: AccountName },
}

pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Context::resolve(cli.config).map_err(anyhow::Error::msg)?;
    let Some(command) = cli.command else {
        <Cli as clap::CommandFactory>::command().print_help()?;
        return Ok(());
    };
    match command {
        Command::Serve => serve(&ctx).await,
        Command::List { json } => {
            let views = match ApiClient::discover(&ctx, &api_keys(&ctx)).await? {
                Some(api) => api.accounts().await?,
                None => open(&ctx, Mode::Observer).await?.snapshot(),
            };
            let running = lock::holder(&ctx.data_dir).is_some();
            output::accounts(&views, json, running)
        }
        Command::Token {
            name,
            min_valid,
            header,
        } => {
            let token = match ApiClient::discover(&ctx, &api_keys(&ctx)).await? {
                Some(api) => api.token(&name, min_valid).await?,
                None => open_for_work(&ctx).await?.token(&name, min_valid).await?,
            };
            let mut out = std::io::stdout().lock();
            if header {
                writeln!(out, "Authorization: Bearer {}", token.access_token.expose())?;
            } else {
                writeln!(out, "{}", token.access_token.expose())?;
            }
            Ok(())
        }
        Command::Refresh { name } => {
            let token = match ApiClient::discover(&ctx, &api_keys(&ctx)).await? {
                Some(api) => api.refresh(&name).await?,
                None => open_for_work(&ctx).await?.refresh(&name).await?,
            };
            println!(
                "{name}: refreshed; expires at {} (in {}s)",
                token.expires_at, token.expires_in
            );
            Ok(())
        }
        Command::Connect {
            name,
            no_browser,
            device,
        } => connect(&ctx, &name, no_browser, device).await,
        Command::Secret {
            action: SecretAction::Set { name },
        } => {
            let engine = open(&ctx, Mode::Observer).await?;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the secret from stdin")?;
            let value = Secret::new(text.trim_end_matches(['\r', '\n']).to_owned());
            engine.set_client_secret(&name, value).await?;
            eprintln!("{name}: client secret stored in the keychain");
            Ok(())
        }
        Command::Disconnect { name } => {
            let engine = open(&ctx, Mode::Observer).await?;
            if let Some(warning) = engine.disconnect(&name).await? {
                eprintln!("{name}: {warning}");
            }
            // A running engine still holds the token in memory; asking it to refresh makes it
            // re-read the keychain, find nothing, and stop serving and refreshing the account.
            if let Some(api) = ApiClient::discover(&ctx, &api_keys(&ctx)).await? {
                let _ = api.refresh(&name).await; // answers "not connected", as it should
            }
            eprintln!("{name}: disconnected; its secrets are deleted from the keychain");
            Ok(())
        }
        Command::ApiKey { action } => api_key(&ctx, action).await,
        Command::Log { name, json, limit } => {
            let entries = match ApiClient::discover(&ctx, &api_keys(&ctx)).await? {
                Some(api) => api.history(name.as_ref(), limit).await?,
                None => open(&ctx, Mode::Observer)
                    .await?
                    .history(name.as_ref(), limit)?,
            };
            output::history(&entries, json)
        }
    }
}

fn api_keys(ctx: &Context) -> ApiKeys {
    let store = std::sync::Arc::new(OsKeychain::new(&ctx.keychain_service));
    ApiKeys::new(&ctx.data_dir, Keychain::new(store))
}

async fn api_key(ctx: &Context, action: ApiKeyAction) -> Result<()> {
    std::fs::create_dir_all(&ctx.data_dir)
        .with_context(|| format!("data dir {}", ctx.data_dir.display()))?;
    let keys = api_keys(ctx);
    match action {
        ApiKeyAction::Create { label } => {
            let key = keys.create(&label).await?;
            println!("{}", key.expose());
            eprintln!("API key `{label}` created; it is shown only this once");
        }
        ApiKeyAction::List { json } => {
            let list = keys.list()?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|k| serde_json::json!({ "label": k.label, "created_at": k.created_at }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if list.is_empty() {
                println!("no API keys; create one with `tokenwarden api-key create LABEL`");
            } else {
                for k in &list {
                    println!("{:<24} created {}", k.label, k.created_at);
                }
            }
        }
        ApiKeyAction::Revoke { label } => {
            keys.revoke(&label).await?;
            eprintln!("API key `{label}` revoked");
        }
    }
    Ok(())
}

async fn connect(ctx: &Context, name: &AccountName, no_browser: bool, device: bool) -> Result<()> {
    let engine = open_for_work(ctx).await?;
    let view = if device {
        engine
            .connect_device(name, |start| {
                // stdout: the URL and the code alone, for scripts; the explanation on stderr.
                println!("{}", start.verification_uri);
                println!("{}", start.user_code);
                let _ = std::io::stdout().flush(); // a closed stdout shows up as no approval
                eprintln!(
                    "To connect {name}, open {} on any device and enter the code {} (valid for {} minutes).",
                    start.verification_uri,
                    start.user_code,
                    start.expires_in.as_secs().div_ceil(60)
                );
            })
            .await?
    } else {
        engine
            .connect(name, |url| {
                if no_browser {
                    println!("{url}");
                    let _ = std::io::stdout().flush(); // a closed stdout shows up as no redirect
                } else {
                    eprintln!(
                        "Opening the browser to connect {name}. If it does not open, visit:\n{url}"
                    );
                    if let Err(e) = open::that_detached(url.as_str()) {
                        eprintln!("(could not open a browser: {e})");
                    }
                }
            })
            .await?
    };
    if engine.mode() == Mode::Observer {
        // A running engine takes the new token set from the keychain when asked for it.
        if let Some(api) = ApiClient::discover(ctx, &api_keys(ctx)).await? {
            if let Err(e) = api.token(name, Duration::ZERO).await {
                tracing::warn!(error = %e, "the running engine has not taken the new token yet");
            }
        }
    }
    let expires = view.expires_at.map(|d| d.to_string()).unwrap_or_default();
    eprintln!("{name}: connected; token expires at {expires}");
    Ok(())
}

async fn open(ctx: &Context, mode: Mode) -> Result<Engine> {
    Ok(Engine::open(ctx, mode, Role::Cli).await?)
}

/// Refresher when no engine runs on this machine, observer when one does: one process
/// refreshes.
async fn open_for_work(ctx: &Context) -> Result<Engine> {
    let running = matches!(lock::holder(&ctx.data_dir), Some(h) if h.role == Role::Engine);
    match Engine::open(
        ctx,
        if running {
            Mode::Observer
        } else {
            Mode::Refresher
        },
        Role::Cli,
    )
    .await
    {
        // It started between our look and our lock: leave the work to it.
        Err(crate::engine::EngineError::Lock(lock::LockError::HeldByEngine { .. })) => {
            open(ctx, Mode::Observer).await
        }
        other => Ok(other?),
    }
}

/// The engine in the foreground: scheduler and local API until SIGINT/SIGTERM, then both
/// drain (in-flight refreshes finish their keychain writes).
async fn serve(ctx: &Context) -> Result<()> {
    let engine = Engine::open(ctx, Mode::Refresher, Role::Engine).await?;
    let listener = crate::api::bind(&engine).await?;
    let listen = listener.local_addr()?;
    engine.api_keys().make_engine_key().await?;
    engine.announce(listen)?;
    let count = engine.config().accounts.len();
    tracing::info!(accounts = count, api = %listen, config = %engine.config().path.display(), "engine started");
    let stop = CancellationToken::new();
    let runner = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run(stop).await }
    });
    let mut api = tokio::spawn(crate::api::serve(engine.clone(), listener, stop.clone()));
    let api_ended = tokio::select! {
        r = shutdown_signal() => { r?; None }
        r = &mut api => Some(r),
    };
    tracing::info!("stopping: waiting for refreshes in flight");
    stop.cancel();
    runner.await.context("engine task")?;
    let result = match api_ended {
        Some(r) => r,
        None => api.await,
    };
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("the local API stopped: {e}")),
        Err(e) => Err(anyhow::anyhow!("the local API task failed: {e}")),
    }
}

async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
