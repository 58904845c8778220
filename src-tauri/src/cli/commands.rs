//! One function per command. Each asks a running engine over its API when there is one,
//! else does the work itself: reading needs no lock, writing takes the lock of the keychain
//! service (waiting a little for another CLI command, never for a running engine).

use std::io::{Read, Write};

use anyhow::{Context as _, Result};

use super::client::ApiClient;
use super::{output, ApiKeyAction, Command, SecretAction, StoreAction};
use crate::engine::api_keys::ApiKeys;
use crate::engine::lock::{self, Role};
use crate::engine::migrate;
use crate::engine::names::AccountName;
use crate::engine::paths::Context;
use crate::engine::secret::Secret;
use crate::engine::secrets::{self, Keychain};
use crate::engine::{Engine, EngineError, Mode};

pub async fn dispatch(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Serve => serve(ctx).await,
        Command::List { json } => {
            let views = match running(ctx).await? {
                Some(api) => api.accounts().await?,
                None => open(ctx, Mode::Observer).await?.snapshot(),
            };
            output::accounts(&views, json)
        }
        Command::Token {
            name,
            min_valid,
            header,
        } => {
            let token = match running(ctx).await? {
                Some(api) => api.token(&name, min_valid).await?,
                None => {
                    let engine = open_for_work(ctx).await?;
                    finish(&engine, engine.token(&name, min_valid).await).await?
                }
            };
            let mut out = std::io::stdout().lock();
            if header {
                writeln!(out, "Authorization: Bearer {}", token.access_token.expose())?;
            } else {
                writeln!(out, "{}", token.access_token.expose())?;
            }
            Ok(())
        }
        Command::Import {
            from: super::ImportFrom::Tokenboy { path },
        } => super::tokenboy::run(&path),
        Command::Exec {
            names,
            env,
            min_valid,
            command,
        } => super::exec::run(ctx, &names, &env, min_valid, &command).await,
        Command::Refresh { name } => {
            let token = match running(ctx).await? {
                Some(api) => api.refresh(&name).await?,
                None => {
                    let engine = open_for_work(ctx).await?;
                    finish(&engine, engine.refresh(&name).await).await?
                }
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
        } => super::connect::run(ctx, &name, no_browser, device).await,
        Command::Secret {
            action: SecretAction::Set { name },
        } => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the secret from stdin")?;
            let value = Secret::new(text.trim_end_matches(['\r', '\n']).to_owned());
            match running(ctx).await? {
                Some(api) => {
                    api.set_secret(&name, &value).await?;
                }
                None => {
                    let engine = open_for_work(ctx).await?;
                    finish(&engine, engine.set_client_secret(&name, value).await).await?;
                }
            }
            eprintln!("{name}: client secret stored in the keychain");
            Ok(())
        }
        Command::Disconnect { name } => {
            let warning = match running(ctx).await? {
                Some(api) => api.disconnect(&name).await?,
                None => {
                    let engine = open_for_work(ctx).await?;
                    finish(&engine, engine.disconnect(&name).await).await?
                }
            };
            if let Some(warning) = warning {
                eprintln!("{name}: {warning}");
            }
            eprintln!("{name}: disconnected; its secrets are deleted from the keychain");
            Ok(())
        }
        Command::ApiKey { action } => api_key(ctx, action).await,
        Command::Store {
            action: StoreAction::Migrate { to },
        } => {
            let ctx = ctx.clone();
            let done = tokio::task::spawn_blocking(move || migrate::migrate(&ctx, to)).await??;
            if done.from == done.to {
                eprintln!(
                    "the config already uses the {} store; nothing to move",
                    done.to.as_str()
                );
            } else {
                eprintln!(
                    "moved {} secrets of {} accounts from the {} store to the {} store in {:.1}s; the config now says [store] kind = \"{}\"",
                    done.items,
                    done.accounts,
                    done.from.as_str(),
                    done.to.as_str(),
                    done.elapsed.as_secs_f64(),
                    done.to.as_str()
                );
            }
            Ok(())
        }
        Command::Store {
            action: StoreAction::Init { print },
        } => store_init(ctx, print),
        Command::Log { name, json, limit } => {
            let entries = match running(ctx).await? {
                Some(api) => api.history(name.as_ref(), limit).await?,
                None => {
                    open(ctx, Mode::Observer)
                        .await?
                        .history(name.as_ref().map(std::slice::from_ref), limit)
                        .await?
                }
            };
            output::history(&entries, json)
        }
    }
}

/// The running engine's API, if an engine runs for this keychain service.
pub async fn running(ctx: &Context) -> Result<Option<ApiClient>> {
    ApiClient::discover(ctx, api_keys(ctx)).await
}

fn api_keys(ctx: &Context) -> ApiKeys {
    ApiKeys::new(
        &ctx.data_dir,
        Keychain::new(secrets::os_store(&ctx.keychain_service)),
    )
}

pub async fn open(ctx: &Context, mode: Mode) -> Result<Engine> {
    Ok(Engine::open(ctx, mode, Role::Cli).await?)
}

/// The writer when no engine runs; an observer (which refreshes nothing) when one does but
/// its API could not be reached.
pub(super) async fn open_for_work(ctx: &Context) -> Result<Engine> {
    let running = matches!(lock::holder(&ctx.lock_place()), Some(h) if h.role == Role::Engine);
    let mode = if running {
        Mode::Observer
    } else {
        Mode::Refresher
    };
    match Engine::open(ctx, mode, Role::Cli).await {
        // It started between our look and our lock: leave the work to it.
        Err(EngineError::Lock(lock::LockError::HeldByEngine { .. })) => {
            open(ctx, Mode::Observer).await
        }
        other => Ok(other?),
    }
}

/// Closes a one-shot engine: waits for its tasks and saves what is only in memory. A token
/// set that still cannot be saved fails the command, because this process is its only copy.
pub async fn finish<T>(engine: &Engine, result: Result<T, EngineError>) -> Result<T> {
    let unsaved = engine.close().await;
    match (result, unsaved.into_iter().next()) {
        (_, Some(lost)) => {
            let holder = match lost {
                EngineError::Unsaved {
                    journaled: true, ..
                } => "the provider issued a new token that the keychain refused; the token journal holds it, and the next command or engine start writes it",
                _ => "the provider issued a new token that could not be saved, and this command is its only holder",
            };
            Err(anyhow::Error::new(lost).context(holder))
        }
        (Err(EngineError::Unsaved { account, .. }), None) => Err(anyhow::anyhow!(
            "{account}: the new token was saved in the keychain only on a later try; it is valid, run the command again to use it"
        )),
        (result, None) => Ok(result?),
    }
}

/// The accounts a key may see, in words.
fn scope_words(accounts: Option<&[AccountName]>) -> String {
    match accounts {
        None => "all accounts".to_owned(),
        Some(a) => a
            .iter()
            .map(AccountName::as_str)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

async fn api_key(ctx: &Context, action: ApiKeyAction) -> Result<()> {
    crate::engine::own_data_dir(&ctx.data_dir)?;
    let keys = api_keys(ctx);
    match action {
        ApiKeyAction::Create {
            label,
            accounts,
            write,
        } => {
            if let Some(accounts) = &accounts {
                // A typo would make a key that opens nothing: refuse names the config lacks.
                let config = crate::engine::config::Config::load(&ctx.config_path)?;
                for name in accounts {
                    if !config.accounts.iter().any(|a| &a.name == name) {
                        anyhow::bail!(
                            "--accounts: no account is named `{name}` in {}",
                            config.path.display()
                        );
                    }
                }
            }
            let key = keys.create(&label, accounts.clone(), write).await?;
            println!("{}", key.expose());
            let scope = scope_words(accounts.as_deref());
            let may = if write {
                "it may read and change them"
            } else {
                "it may read them, not change them (`--write` for that)"
            };
            eprintln!("API key `{label}` created for {scope}; {may}; it is shown only this once");
        }
        ApiKeyAction::List { json } => {
            let list = keys.list()?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|k| serde_json::json!({ "label": k.label, "created_at": k.created_at, "accounts": k.accounts, "write": k.write }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if list.is_empty() {
                println!("no API keys; create one with `tokenwarden api-key create LABEL`");
            } else {
                for k in &list {
                    let scope = scope_words(k.accounts.as_deref());
                    let access = if k.write { "read-write" } else { "read-only" };
                    println!(
                        "{:<24} created {}  {access:<10}  {scope}",
                        k.label, k.created_at
                    );
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

/// The engine in the foreground until SIGINT/SIGTERM, then a clean stop (in-flight refreshes
/// finish their keychain writes; unsaved sets get a last write).
async fn serve(ctx: &Context) -> Result<()> {
    // Caught from before the API answers: a SIGTERM as soon as it does (a test, or systemd
    // stopping a unit that just started) must be a clean stop, not the default death.
    let shutdown = ShutdownSignal::catch()?;
    let mut host = crate::host::Host::start(ctx).await?;
    let failed = tokio::select! {
        r = shutdown.recv() => { r?; None }
        e = host.failed() => Some(e),
    };
    let stopped = host.stop().await;
    match failed {
        Some(e) => Err(e),
        None => stopped,
    }
}

/// SIGINT and SIGTERM, caught from the moment this is made.
struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn catch() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(self) -> Result<()> {
        #[cfg(unix)]
        {
            let Self { mut term, mut int } = self;
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}

/// `store init`: a new key for a shared store. It is never written over an existing one:
/// the fleet's secrets are sealed with it. `--print` stores nothing, so it reads no config:
/// it may run anywhere, before any host has one.
fn store_init(ctx: &Context, print: bool) -> Result<()> {
    use crate::engine::fleet;
    let new_key = || {
        crate::engine::sealed::new_key_text(&ring::rand::SystemRandom::new())
            .context("the system's random number generator failed")
    };
    if print {
        println!("{}", new_key()?.expose());
        eprintln!(
            "give every host this key as {} (or in the file store.key_file names, mode 0600)",
            fleet::KEY_ENV
        );
        return Ok(());
    }
    let config = crate::engine::config::Config::load(&ctx.config_path)?;
    let Some(settings) = config.fleet else {
        anyhow::bail!(
            "{}: [store] kind is \"{}\"; `store init` makes the key of a shared store (kind = \"redis\"); `store init --print` makes one without a config",
            ctx.config_path.display(),
            config.store.as_str()
        );
    };
    let key = new_key()?;
    let keychain = secrets::os_store(&ctx.keychain_service);
    let source = fleet::write_new_key(&settings, keychain.as_ref(), &key)?;
    eprintln!(
        "made the store key in {source}; give the other hosts the same key (`tokenwarden store init --print` makes one to copy instead)"
    );
    Ok(())
}
