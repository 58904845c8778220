//! The local HTTP API (axum): a thin adapter over the engine handle.
//! * `connections` the accept loop: connection cap, header and idle timeouts
//! * `slots`   the places under the cap, and which connection gives way to a newcomer
//! * `fast`    the token routes' everyday answer, without the router
//! * `guard`   who gets in: loopback Host, no Origin, bearer key, failed-auth rate limit
//! * `local`   the Unix socket where this user's processes need no key
//! * `routes`  one small handler per route of the contract (DESIGN "Local HTTP API")
//! * `manage`  the routes that change an account: connect, disconnect, secret, reload
//! * `proxy`   requests passed on to an account's API with its token, retried once on 401
//! * `metadata` the GCE-style metadata server for Google's libraries (`[metadata]`)
//! * `taker`   who takes a token: the process at the other end, for the ledger
//! * `scope`   what a key limited to some accounts sees of the metrics
//! * `error`   engine errors → `{"error","message","remedy","account"}` with the contract's
//!   status codes

mod connections;
pub(crate) mod contract;
mod error;
mod fast;
mod guard;
pub mod local;
mod manage;
pub mod metadata;
mod peer;
pub mod proxy;
mod routes;
mod scope;
mod slots;
pub(crate) mod taker;
mod tokenboy;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post, put};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use contract::paths;

/// What every handler is given. Cloned for each request (the guard's and the handler's
/// `State`), so it is one `Arc`: cloning its parts one by one cost a lock per request (a
/// cancellation token's clone takes its tree's mutex).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

pub struct Parts {
    pub engine: Engine,
    pub guard: guard::Guard,
    /// Ends long-lived answers (the event stream) at shutdown.
    pub stop: CancellationToken,
    /// One permit per event-stream subscriber.
    pub subscribers: Arc<tokio::sync::Semaphore>,
    /// For requests passed on to accounts' APIs.
    pub proxy: reqwest::Client,
}

impl std::ops::Deref for AppState {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

pub fn router(engine: Engine, listen: SocketAddr, stop: CancellationToken) -> Router {
    router_with(state(engine, listen, stop))
}

fn state(engine: Engine, listen: SocketAddr, stop: CancellationToken) -> AppState {
    let allow_remote = engine.config().api.allow_remote;
    AppState(Arc::new(Parts {
        engine,
        guard: guard::Guard::new(listen, allow_remote),
        stop,
        subscribers: Arc::new(tokio::sync::Semaphore::new(
            crate::engine::MAX_EVENT_SUBSCRIBERS,
        )),
        proxy: proxy::client(),
    }))
}

fn router_with(state: AppState) -> Router {
    Router::new()
        .route(paths::HEALTHZ, get(routes::healthz))
        .route(paths::ACCOUNTS, get(routes::accounts))
        .route(paths::TOKEN, get(routes::token))
        .route(paths::REFRESH, post(routes::refresh))
        .route(paths::REJECTED, post(routes::rejected))
        .route(paths::CALLERS, get(routes::callers))
        .route(
            paths::CONNECT,
            post(manage::begin_connect)
                .get(manage::connect_status)
                .delete(manage::cancel_connect),
        )
        .route(paths::DISCONNECT, post(manage::disconnect))
        .route(paths::RELOAD_ACCOUNT, post(manage::reload_account))
        .route(paths::GRANT, put(manage::hand_over_grant))
        .route(paths::SECRET, put(manage::set_secret))
        .route(paths::RELOAD, post(manage::reload_config))
        .route(paths::HISTORY, get(routes::history))
        .route(paths::EVENTS, get(routes::events))
        .route(paths::METRICS, get(routes::metrics))
        .route(paths::TOKENBOY, get(routes::tokenboy))
        .route(paths::PROXY, any(proxy::forward))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        // Bodies are a token or nothing; a few KiB is plenty.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(from_fn_with_state(state.clone(), guard::check))
        .with_state(state)
}

/// Binds `api.listen`. Refused before anything listens when the address is not loopback
/// and `allow_remote` is not set (the config loader checks this too).
pub async fn bind(engine: &Engine) -> anyhow::Result<TcpListener> {
    let api = &engine.config().api;
    if !api.listen.ip().is_loopback() && !api.allow_remote {
        anyhow::bail!("api.listen {} is not a loopback address; set allow_remote = true to serve tokens to the network", api.listen);
    }
    listen(api.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {} ({e}); set [api] listen to a free port",
            api.listen
        )
    })
}

/// Connections the kernel queues before they are accepted (capped by `net.core.somaxconn`).
/// tokio's `bind` asks for 1,024: a burst of thousands of programs connecting at once (a 401
/// storm) overflows that, and each dropped SYN costs its caller a one-second retransmit.
const BACKLOG: u32 = 8192;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's `bind` does: a restarted engine gets its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves until `stop` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    local: Option<local::LocalListener>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    let settings = engine.config().api.clone();
    let state = state(engine, listen, stop.clone());
    let fast = Arc::new(fast::FastPath::new(state.clone()));
    let app = router_with(state);
    let caps = connections::Caps::new(&settings);
    let tcp = connections::serve(
        listener,
        app.clone(),
        fast.clone(),
        &settings,
        caps.tcp,
        stop.clone(),
    );
    match local {
        Some(local) => {
            let unix = connections::serve(local, app, fast, &settings, caps.unix, stop);
            let (tcp, unix) = tokio::join!(tcp, unix);
            tcp.and(unix)
        }
        None => tcp.await,
    }
}
