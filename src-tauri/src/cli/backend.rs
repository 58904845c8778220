//! Where a command's work is done, chosen once per command: a running engine, asked over its
//! API, or else an engine of this process's own (reading needs no lock; writing takes the
//! lock of the keychain service, waiting a little for another CLI command, never for a
//! running engine), closed before the command prints so that its writes are flushed.

use std::time::Duration;

use anyhow::Result;

use super::client::ApiClient;
use crate::engine::{
    lock_holder, AccountName, AccountView, ApiKeys, Context, Engine, EngineError, Entry, LockError,
    Mode, Role, Secret, Taker, TakerRow, TokenView, Via,
};

/// What the commands ask of an engine, wherever it runs.
pub(super) trait Backend {
    async fn accounts(&self) -> Result<Vec<AccountView>>;
    /// Each name's token, valid for at least `min_valid`, in the order given.
    async fn tokens(&self, names: &[AccountName], min_valid: Duration) -> Result<Vec<TokenView>>;
    async fn refresh(&self, name: &AccountName) -> Result<TokenView>;
    /// "An API refused this token": a refresh if it is still the current one (shared with
    /// every other report), then the current token.
    async fn rejected(&self, name: &AccountName, token: &Secret) -> Result<TokenView>;
    async fn set_secret(&self, name: &AccountName, value: Secret) -> Result<()>;
    /// A warning when the provider could not be told to revoke.
    async fn disconnect(&self, name: &AccountName) -> Result<Option<String>>;
    async fn history(&self, name: Option<&AccountName>, limit: usize) -> Result<Vec<Entry>>;
    /// Who took these accounts' tokens (`None`: every account).
    async fn takers(&self, name: Option<&AccountName>) -> Result<Vec<TakerRow>>;
}

impl Backend for ApiClient {
    async fn accounts(&self) -> Result<Vec<AccountView>> {
        ApiClient::accounts(self).await
    }
    async fn tokens(&self, names: &[AccountName], min_valid: Duration) -> Result<Vec<TokenView>> {
        let mut tokens = Vec::with_capacity(names.len());
        for name in names {
            tokens.push(self.token(name, min_valid).await?);
        }
        Ok(tokens)
    }
    async fn refresh(&self, name: &AccountName) -> Result<TokenView> {
        ApiClient::refresh(self, name).await
    }
    async fn rejected(&self, name: &AccountName, token: &Secret) -> Result<TokenView> {
        ApiClient::rejected(self, name, token).await
    }
    async fn set_secret(&self, name: &AccountName, value: Secret) -> Result<()> {
        ApiClient::set_secret(self, name, &value).await.map(drop)
    }
    async fn disconnect(&self, name: &AccountName) -> Result<Option<String>> {
        ApiClient::disconnect(self, name).await
    }
    async fn history(&self, name: Option<&AccountName>, limit: usize) -> Result<Vec<Entry>> {
        ApiClient::history(self, name, limit).await
    }
    async fn takers(&self, name: Option<&AccountName>) -> Result<Vec<TakerRow>> {
        let names = match name {
            Some(name) => vec![name.clone()],
            None => self.accounts().await?.into_iter().map(|a| a.name).collect(),
        };
        let mut rows = Vec::new();
        for name in &names {
            rows.extend(ApiClient::takers(self, name).await?);
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.last_at));
        Ok(rows)
    }
}

/// A token valid for `prefer` if the engine can have one, else any valid token: for the
/// programs that take a token for a while (git, an MCP session), where a provider's tokens
/// that live less than `prefer` must still be served.
pub(super) async fn token_preferring(
    backend: &impl Backend,
    name: &AccountName,
    prefer: Duration,
) -> Result<TokenView> {
    let names = std::slice::from_ref(name);
    match backend.tokens(names, prefer).await {
        Ok(mut t) => Ok(t.remove(0)),
        Err(first) => match backend.tokens(names, Duration::ZERO).await {
            Ok(mut t) => Ok(t.remove(0)),
            Err(_) => Err(first),
        },
    }
}

/// No engine answers: this process opens its own for each command.
pub(super) struct Local<'a> {
    pub ctx: &'a Context,
}

impl Backend for Local<'_> {
    async fn accounts(&self) -> Result<Vec<AccountView>> {
        Ok(open(self.ctx, Mode::Observer).await?.snapshot())
    }
    async fn tokens(&self, names: &[AccountName], min_valid: Duration) -> Result<Vec<TokenView>> {
        let engine = open_for_work(self.ctx).await?;
        let mut tokens = Vec::with_capacity(names.len());
        let fetched = async {
            for name in names {
                tokens.push(engine.token(name, min_valid).await?);
                engine.took(name, this_command());
            }
            Ok(())
        }
        .await;
        finish(&engine, fetched).await?;
        Ok(tokens)
    }
    async fn refresh(&self, name: &AccountName) -> Result<TokenView> {
        let engine = open_for_work(self.ctx).await?;
        let refreshed = engine.refresh(name).await;
        if refreshed.is_ok() {
            engine.took(name, this_command());
        }
        finish(&engine, refreshed).await
    }
    async fn rejected(&self, name: &AccountName, token: &Secret) -> Result<TokenView> {
        let engine = open_for_work(self.ctx).await?;
        let fresh = engine.rejected(name, token.expose()).await;
        if fresh.is_ok() {
            engine.took(name, this_command());
        }
        finish(&engine, fresh).await
    }
    async fn set_secret(&self, name: &AccountName, value: Secret) -> Result<()> {
        let engine = open_for_work(self.ctx).await?;
        finish(&engine, engine.set_client_secret(name, value).await)
            .await
            .map(drop)
    }
    async fn disconnect(&self, name: &AccountName) -> Result<Option<String>> {
        let engine = open_for_work(self.ctx).await?;
        finish(&engine, engine.disconnect(name).await).await
    }
    async fn history(&self, name: Option<&AccountName>, limit: usize) -> Result<Vec<Entry>> {
        let engine = open(self.ctx, Mode::Observer).await?;
        Ok(engine
            .history(name.map(std::slice::from_ref), limit)
            .await?)
    }
    async fn takers(&self, name: Option<&AccountName>) -> Result<Vec<TakerRow>> {
        let engine = open(self.ctx, Mode::Observer).await?;
        Ok(engine.takers(name.map(std::slice::from_ref)).await?)
    }
}

/// This CLI process, which took a token itself (no engine ran).
fn this_command() -> Taker {
    Taker::this_process(Via::Cli)
}

/// The running engine's API, if an engine runs for this keychain service.
pub(super) async fn running(ctx: &Context) -> Result<Option<ApiClient>> {
    ApiClient::discover(ctx, ApiKeys::of_context(ctx)).await
}

pub(super) async fn open(ctx: &Context, mode: Mode) -> Result<Engine> {
    Ok(Engine::open(ctx, mode, Role::Cli).await?)
}

/// The writer when no engine runs; an observer (which refreshes nothing) when one does but
/// its API could not be reached.
async fn open_for_work(ctx: &Context) -> Result<Engine> {
    let running = matches!(lock_holder(&ctx.lock_place()), Some(h) if h.role == Role::Engine);
    let mode = if running {
        Mode::Observer
    } else {
        Mode::Refresher
    };
    match Engine::open(ctx, mode, Role::Cli).await {
        // It started between our look and our lock: leave the work to it.
        Err(EngineError::Lock(LockError::HeldByEngine { .. })) => open(ctx, Mode::Observer).await,
        other => Ok(other?),
    }
}

/// Closes a one-shot engine: waits for its tasks and saves what is only in memory. A token
/// set that still cannot be saved fails the command, because this process is its only copy.
pub(super) async fn finish<T>(engine: &Engine, result: Result<T, EngineError>) -> Result<T> {
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
