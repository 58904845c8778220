//! The runtime that `serve` and the tray app share: the engine under the lock of its keychain
//! service, the scheduler, the local API, the announcement that lets the CLI find them, and
//! the drain at exit (in-flight refreshes finish their keychain writes, unsaved sets get a
//! last write, the history is flushed). Front ends start a [`Host`], use its engine, and
//! stop it; none of them composes these parts itself.

use anyhow::{anyhow, Context as _, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::lock::Role;
use crate::engine::paths::Context;
use crate::engine::{Engine, EngineError, Mode};

pub struct Host {
    engine: Engine,
    stop: CancellationToken,
    /// `None` once [`Host::failed`] has seen it end.
    runner: Option<JoinHandle<Vec<crate::engine::EngineError>>>,
    api: Option<JoinHandle<std::io::Result<()>>>,
    /// The metadata server for Google's libraries, where `[metadata]` asks for one.
    metadata: Option<JoinHandle<std::io::Result<()>>>,
}

impl Host {
    /// Opens the engine as this keychain service's refresher (refused if another engine
    /// runs), binds the API, makes the engine's own key for the CLI, and announces where.
    pub async fn start(ctx: &Context) -> Result<Self> {
        let engine = Engine::open(ctx, Mode::Refresher, Role::Engine).await?;
        let listener = crate::api::bind(&engine).await?;
        let listen = listener.local_addr()?;
        let metadata_listener = match &engine.config().metadata {
            Some(m) => Some(tokio::net::TcpListener::bind(m.listen).await.map_err(|e| {
                anyhow!(
                    "cannot listen on {} for the metadata server ({e}); set [metadata] listen to a free port",
                    m.listen
                )
            })?),
            None => None,
        };
        let local = crate::api::local::bind(&engine);
        let socket = local.as_ref().map(|l| l.path().to_owned());
        // Announced with its key in the keychain, unless the keychain does not answer soon.
        let (first_try, tried) = tokio::sync::oneshot::channel();
        tokio::spawn(make_engine_key(engine.clone(), first_try));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), tried).await;
        engine.announce(listen, socket.clone())?;
        let config = engine.config();
        if !config.api.keyless_tokenboy.is_empty() {
            let names: Vec<&str> = config
                .api
                .keyless_tokenboy
                .iter()
                .map(|n| n.as_str())
                .collect();
            tracing::warn!(accounts = %names.join(", "), "GET /token?name= answers these accounts without a key ([api] keyless_tokenboy): any process on this machine can read their tokens");
        }
        tracing::info!(accounts = config.accounts.len(), api = %listen, socket = ?socket, config = %config.path.display(), "engine started");
        if let Some(advice) =
            crate::engine::store::store_advice(config.store, config.accounts.len())
        {
            tracing::warn!("{advice}");
        }
        let stop = CancellationToken::new();
        let runner = tokio::spawn({
            let (engine, stop) = (engine.clone(), stop.clone());
            async move { engine.run(stop).await }
        });
        let api = tokio::spawn(crate::api::serve(
            engine.clone(),
            listener,
            local,
            stop.clone(),
        ));
        let metadata =
            match (metadata_listener, config.metadata.clone()) {
                (Some(listener), Some(settings)) => Some(tokio::spawn(
                    crate::api::metadata::serve(engine.clone(), settings, listener, stop.clone()),
                )),
                _ => None,
            };
        Ok(Self {
            engine,
            stop,
            runner: Some(runner),
            api: Some(api),
            metadata,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Resolves only if the API or the scheduler stops by itself (or panics): an engine
    /// that no longer refreshes, or can no longer be asked, must exit rather than limp on.
    pub async fn failed(&mut self) -> anyhow::Error {
        let (Some(runner), Some(api)) = (self.runner.as_mut(), self.api.as_mut()) else {
            return anyhow!("the engine has already failed");
        };
        tokio::select! {
            r = runner => {
                self.runner = None;
                match r {
                    Ok(_) => anyhow!("the engine's scheduler stopped by itself"),
                    Err(e) => anyhow!("the engine's scheduler failed: {e}"),
                }
            }
            r = api => {
                self.api = None;
                match r {
                    Ok(Ok(())) => anyhow!("the local API stopped"),
                    Ok(Err(e)) => anyhow!("the local API stopped: {e}"),
                    Err(e) => anyhow!("the local API task failed: {e}"),
                }
            }
        }
    }

    /// Stops the API and the scheduler, waits for in-flight work, saves what is unsaved.
    pub async fn stop(self) -> Result<()> {
        tracing::info!("stopping: waiting for refreshes in flight");
        self.stop.cancel();
        let unsaved = match self.runner {
            Some(runner) => runner.await.context("engine task")?,
            // The scheduler already failed: still try to drain and save, but a state a panic
            // left half-changed may panic again, and that must not hide the first failure.
            None => {
                use futures_util::FutureExt;
                std::panic::AssertUnwindSafe(self.engine.close())
                    .catch_unwind()
                    .await
                    .unwrap_or_default()
            }
        };
        if let Some(api) = self.api {
            let _ = api.await;
        }
        if let Some(metadata) = self.metadata {
            if let Ok(Err(e)) = metadata.await {
                tracing::warn!(error = %e, "the metadata server stopped with an error");
            }
        }
        match unsaved.as_slice() {
            [] => Ok(()),
            [one @ EngineError::Unsaved {
                journaled: true, ..
            }] => Err(anyhow!("{one}; it could not be saved before exit either")),
            [one] => Err(anyhow!("{one}; it could not be saved before exit either, so that account may need to be connected again")),
            many => Err(anyhow!(
                "{} token sets could not be saved in the {} before exit ({}){}",
                many.len(),
                store_name(many),
                names(many),
                lost_or_kept(many)
            )),
        }
    }
}

/// What becomes of sets unsaved at exit: those in the token journal are written at the
/// next start; one only this process held is lost.
fn lost_or_kept(unsaved: &[EngineError]) -> String {
    let lost: Vec<&EngineError> = unsaved
        .iter()
        .filter(|e| {
            matches!(
                e,
                EngineError::Unsaved {
                    journaled: false,
                    ..
                }
            )
        })
        .collect();
    match lost.len() {
        0 => format!("; they are in the token journal and are written to the {} at the next start", store_name(unsaved)),
        n if n == unsaved.len() => "; only this process held them, so those accounts may need to be connected again".into(),
        _ => format!(
            "; those in the token journal are written at the next start, but only this process held {}, which may need to be connected again",
            names(&lost)
        ),
    }
}

/// The store unsaved sets were to be saved in (an engine has one).
fn store_name(unsaved: &[EngineError]) -> &'static str {
    unsaved
        .iter()
        .find_map(EngineError::store_name)
        .unwrap_or("store")
}

/// The accounts of some errors, in order: the first ten, and how many more.
fn names<E: std::borrow::Borrow<EngineError>>(errors: &[E]) -> String {
    let mut names: Vec<String> = errors
        .iter()
        .filter_map(|e| e.borrow().account().map(ToString::to_string))
        .collect();
    names.sort_unstable();
    match names.len() {
        0..=10 => names.join(", "),
        n => format!("{} and {} more", names[..10].join(", "), n - 10),
    }
}

/// The key the CLI sends over TCP (on the Unix socket it needs none). A keychain that does not
/// answer yet (a login keyring waiting on its unlock prompt) must not keep the engine from
/// starting: the key is made here, tried again every few seconds, and the failure said once.
async fn make_engine_key(
    engine: crate::engine::Engine,
    first_try: tokio::sync::oneshot::Sender<()>,
) {
    let mut said = false;
    let mut first_try = Some(first_try);
    loop {
        let made = engine.api_keys().make_engine_key().await;
        if let Some(tried) = first_try.take() {
            let _ = tried.send(());
        }
        match made {
            Ok(()) => {
                if said {
                    tracing::info!("the engine's key for the CLI is in the keychain now");
                }
                return;
            }
            Err(e) if !said => {
                said = true;
                tracing::warn!(error = %e, "cannot store the engine's key for the CLI yet; the CLI reaches the engine on its Unix socket meanwhile, and the key is tried again every 5 s");
            }
            Err(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
