//! One function per command. The commands any engine can answer run over a [`Backend`]: the
//! running engine when there is one, else an engine of this process's own.

use std::io::{Read, Write};

use anyhow::{Context as _, Result};

use super::backend::{running, Backend, Local};
use super::{output, ApiKeyAction, Command, SecretAction, StoreAction};
use crate::engine::{
    init_store_key, migrate_store, new_store_key, AccountName, ApiKeys, Config, Context, Scope,
    Secret, StoreKind, KEY_ENV,
};

pub async fn dispatch(ctx: &Context, command: Command) -> Result<()> {
    if let Command::Exec {
        names,
        env,
        command,
        ..
    } = &command
    {
        // Its own arguments are refused before any engine is looked for.
        super::exec::check(names, env, command)?;
    }
    match command {
        Command::Serve => serve(ctx).await,
        Command::Import {
            from: super::ImportFrom::Tokenboy { path },
        } => super::tokenboy::run(&path),
        Command::Connect {
            name,
            no_browser,
            device,
        } => super::connect::run(ctx, &name, no_browser, device).await,
        Command::ApiKey { action } => api_key(ctx, action).await,
        Command::Mcp { name } => super::mcp::run(ctx, &name).await,
        Command::Doctor { name, json, bundle } => {
            super::doctor::run(ctx, name, json, bundle.as_deref()).await
        }
        Command::Store {
            action: StoreAction::Migrate { to },
        } => store_migrate(ctx, to).await,
        Command::Store {
            action: StoreAction::Init { print },
        } => store_init(ctx, print),
        // Asked of the running engine if there is one, else done here.
        command => match running(ctx).await? {
            Some(api) => over(ctx, &api, command).await,
            None => over(ctx, &Local { ctx }, command).await,
        },
    }
}

/// The commands that any engine can answer, wherever it runs.
async fn over(ctx: &Context, backend: &impl Backend, command: Command) -> Result<()> {
    match command {
        Command::List { json } => output::accounts(&backend.accounts().await?, json),
        Command::Token {
            name,
            min_valid,
            header,
        } => {
            let token = backend
                .tokens(std::slice::from_ref(&name), min_valid)
                .await?;
            let token = &token[0].access_token;
            let mut out = std::io::stdout().lock();
            if header {
                writeln!(out, "Authorization: Bearer {}", token.expose())?;
            } else {
                writeln!(out, "{}", token.expose())?;
            }
            Ok(())
        }
        Command::Exec {
            names,
            env,
            min_valid,
            command,
        } => super::exec::run(backend, &names, &env, min_valid, &command).await,
        Command::GitCredential { operation } => {
            let config = Config::load(&ctx.config_path)?;
            super::git_credential::run(backend, &config, &operation).await
        }
        Command::KubeCredential {
            name,
            api_version,
            min_valid,
        } => {
            let info = std::env::var("KUBERNETES_EXEC_INFO").ok();
            let version = super::kube::version(api_version.as_deref(), info.as_deref())?;
            super::kube::run(backend, &name, version, min_valid).await
        }
        Command::Refresh { name } => {
            let token = backend.refresh(&name).await?;
            println!(
                "{name}: refreshed; expires at {} (in {}s)",
                token.expires_at, token.expires_in
            );
            Ok(())
        }
        Command::Secret {
            action: SecretAction::Set { name },
        } => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the secret from stdin")?;
            let value = Secret::new(text.trim_end_matches(['\r', '\n']).to_owned());
            backend.set_secret(&name, value).await?;
            eprintln!("{name}: client secret stored in the keychain");
            Ok(())
        }
        Command::Disconnect { name } => {
            if let Some(warning) = backend.disconnect(&name).await? {
                eprintln!("{name}: {warning}");
            }
            eprintln!("{name}: disconnected; its secrets are deleted from the keychain");
            Ok(())
        }
        Command::Who { name, json } => output::takers(&backend.takers(name.as_ref()).await?, json),
        Command::Log { name, json, limit } => {
            output::history(&backend.history(name.as_ref(), limit).await?, json)
        }
        Command::Serve
        | Command::Import { .. }
        | Command::Connect { .. }
        | Command::ApiKey { .. }
        | Command::Mcp { .. }
        | Command::Doctor { .. }
        | Command::Store { .. } => unreachable!("dispatched without an engine"),
    }
}

async fn store_migrate(ctx: &Context, to: StoreKind) -> Result<()> {
    let ctx = ctx.clone();
    let done = tokio::task::spawn_blocking(move || migrate_store(&ctx, to)).await??;
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
    let keys = ApiKeys::of_context(ctx);
    match action {
        ApiKeyAction::Create {
            label,
            accounts,
            write,
        } => {
            // The config is read only for a scoped key: a key to every account can be made
            // before there is a config to read.
            let scope = match accounts.clone() {
                Some(names) => {
                    let config = Config::load(&ctx.config_path)?;
                    Some(Scope::new(names, &config)?)
                }
                None => None,
            };
            let key = keys.create(&label, scope, write).await?;
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

/// SIGINT and SIGTERM (on Windows, the console's control events), caught from the moment
/// they are waited for.
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
        // A console's Ctrl+C or Ctrl+Break, its window closed, the user logging off or the
        // machine shutting down: Windows allows a few seconds for the last writes.
        #[cfg(windows)]
        {
            use tokio::signal::windows::{ctrl_close, ctrl_logoff, ctrl_shutdown};
            let (mut close, mut logoff, mut shutdown) =
                (ctrl_close()?, ctrl_logoff()?, ctrl_shutdown()?);
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = close.recv() => {}
                _ = logoff.recv() => {}
                _ = shutdown.recv() => {}
            }
        }
        #[cfg(not(any(unix, windows)))]
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}

/// `store init`: a new key for a shared store. It is never written over an existing one:
/// the fleet's secrets are sealed with it. `--print` stores nothing, so it reads no config:
/// it may run anywhere, before any host has one.
fn store_init(ctx: &Context, print: bool) -> Result<()> {
    if print {
        println!("{}", new_store_key()?.expose());
        eprintln!(
            "give every host this key as {} (or in the file store.key_file names, mode 0600)",
            KEY_ENV
        );
        return Ok(());
    }
    let config = Config::load(&ctx.config_path)?;
    let Some(settings) = config.fleet else {
        anyhow::bail!(
            "{}: [store] kind is \"{}\"; `store init` makes the key of a shared store (kind = \"redis\"); `store init --print` makes one without a config",
            ctx.config_path.display(),
            config.store.as_str()
        );
    };
    let source = init_store_key(&settings, &ctx.keychain_service)?;
    eprintln!(
        "made the store key in {source}; give the other hosts the same key (`tokenwarden store init --print` makes one to copy instead)"
    );
    Ok(())
}
