//! Who takes a token over the API, for the ledger (`engine::ledger`): the process at the
//! other end of the connection, looked up once per connection on the first token it takes
//! (a keep-alive client pays for the lookup once, off the API's workers: that first request
//! goes through the router, which waits for it on the thread that looks up callers), and the
//! label of the key it showed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use super::guard::Caller;
use super::peer::Peer;
use crate::engine::{AccountName, Engine, Process, Taker, Via};

/// A connection's takes are handed to the ledger at most this often (its first at once, the
/// rest when it closes): one message per request cost a busy API a fifth of its throughput.
const HAND_OVER_EVERY: Duration = Duration::from_secs(1);

/// How long a request waits for its caller to be looked up (normally well under a
/// millisecond; only a stuck `/proc` read takes longer).
const LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// The other end of one connection.
pub struct Identity {
    how: How,
    process: OnceLock<Process>,
    counted: Mutex<Counted>,
}

/// Takes not yet handed to the ledger, by account, key and way.
#[derive(Default)]
struct Counted {
    engine: Option<Engine>,
    takes: HashMap<(AccountName, Option<String>, Via), u64>,
    handed_over: Option<Instant>,
}

enum How {
    Tcp {
        peer: SocketAddr,
        ours: SocketAddr,
    },
    /// The pid the kernel gave with the Unix socket's peer credentials.
    #[cfg(unix)]
    Unix(Option<u32>),
    Unknown,
}

impl Identity {
    pub fn tcp(peer: SocketAddr, ours: Option<SocketAddr>) -> Arc<Self> {
        Self::new(ours.map_or(How::Unknown, |ours| How::Tcp { peer, ours }))
    }

    #[cfg(unix)]
    pub fn unix(pid: Option<u32>) -> Arc<Self> {
        Self::new(How::Unix(pid))
    }

    fn new(how: How) -> Arc<Self> {
        Arc::new(Self {
            how,
            process: OnceLock::new(),
            counted: Mutex::default(),
        })
    }

    /// Whether the process is known already (the fast path answers only then).
    pub fn resolved(&self) -> bool {
        self.process.get().is_some()
    }

    /// Asks the kernel who it is, on the thread that looks up callers (a few milliseconds
    /// of `/proc` at most): the request waits for it, the API's workers do not. Before the
    /// answer, as a short-lived client (curl) is gone from `/proc` right after it.
    pub async fn resolve(self: &Arc<Self>) {
        if self.resolved() {
            return;
        }
        let (done, resolved) = tokio::sync::oneshot::channel();
        let me = self.clone();
        look_up(Box::new(move || {
            me.process_ref();
            let _ = done.send(());
        }));
        // One stuck `/proc` read must not hold every new connection behind it.
        if tokio::time::timeout(LOOKUP_WAIT, resolved).await.is_err() {
            tracing::warn!("looking up a caller took over {LOOKUP_WAIT:?}; noted as unknown");
            let _ = self.process.set(Process::default());
        }
    }

    /// The process, asked of the kernel the first time only.
    fn process(&self) -> Process {
        self.process_ref().clone()
    }

    pub fn process_ref(&self) -> &Process {
        self.process.get_or_init(|| match self.how {
            How::Tcp { peer, ours } => Process::at_tcp(peer, ours),
            #[cfg(unix)]
            How::Unix(Some(pid)) => Process::of_pid(pid),
            #[cfg(unix)]
            How::Unix(None) => Process::default(),
            How::Unknown => Process::default(),
        })
    }

    pub fn taker(&self, key: Option<String>, via: Via) -> Taker {
        Taker {
            process: self.process(),
            key,
            via,
        }
    }

    /// Counts a take of `account`'s token on this connection; hands the counts to the ledger
    /// on the first take and then at most every [`HAND_OVER_EVERY`] (the rest on close).
    pub fn took(&self, engine: &Engine, account: &AccountName, key: Option<String>, via: Via) {
        let due = {
            let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
            *counted
                .takes
                .entry((account.clone(), key, via))
                .or_default() += 1;
            if counted.engine.is_none() {
                counted.engine = Some(engine.clone());
            }
            let due = counted
                .handed_over
                .is_none_or(|at| at.elapsed() >= HAND_OVER_EVERY);
            if due {
                counted.handed_over = Some(Instant::now());
                std::mem::take(&mut counted.takes)
            } else {
                HashMap::new()
            }
        };
        self.hand_over(engine, due);
    }

    fn hand_over(&self, engine: &Engine, takes: HashMap<(AccountName, Option<String>, Via), u64>) {
        for ((account, key, via), times) in takes {
            engine.took_times(&account, self.taker(key, via), times);
        }
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        let counted = std::mem::take(self.counted.get_mut().unwrap_or_else(|e| e.into_inner()));
        if let Some(engine) = &counted.engine {
            self.hand_over(engine, counted.takes);
        }
    }
}

/// The label of the key a request showed, for the ledger: none on the Unix socket, where the
/// kernel vouched for the caller instead.
pub fn key_label(peer: Peer, caller: Option<&Caller>) -> Option<String> {
    match peer {
        Peer::Tcp(_) => caller.and_then(|c| c.0.as_ref()).map(|h| h.label.clone()),
        Peer::SameUser | Peer::OtherUser(_) => None,
    }
}

/// Runs `lookup` on the one thread that looks up callers, in turn. One thread, not the
/// blocking pool: a storm of 10,000 new connections put hundreds of `/proc` searches at once
/// on both cores (1.7 s for the storm in BENCHMARKS §3), starving the answers they wait for.
fn look_up(lookup: Box<dyn FnOnce() + Send>) {
    type Lookup = Box<dyn FnOnce() + Send>;
    static CALLERS: OnceLock<std::sync::mpsc::Sender<Lookup>> = OnceLock::new();
    let callers = CALLERS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Lookup>();
        let _ = std::thread::Builder::new()
            .name("callers".into())
            .spawn(move || rx.into_iter().for_each(|lookup| lookup()));
        tx
    });
    if let Err(unsent) = callers.send(lookup) {
        (unsent.0)(); // no thread (it could not start): looked up here
    }
}

/// Who is asking, in a handler: `asker.took(&engine, &name, Via::Api)`.
pub struct Asker {
    identity: Option<Arc<Identity>>,
    key: Option<String>,
}

impl Asker {
    /// Whether this caller may take `account`'s token (`[api] ask_first`): may wait for the
    /// user's answer.
    pub async fn may_take(&self, engine: &Engine, account: &AccountName) -> Result<(), ApiError> {
        if !engine.asks_first() {
            return Ok(());
        }
        match &self.identity {
            Some(identity) => {
                identity.resolve().await;
                Ok(engine.may_take(account, identity.process_ref()).await?)
            }
            None => Ok(engine.may_take(account, &Process::default()).await?),
        }
    }

    pub async fn took(&self, engine: &Engine, account: &AccountName, via: Via) {
        match &self.identity {
            Some(identity) => {
                identity.resolve().await;
                identity.took(engine, account, self.key.clone(), via);
            }
            None => engine.took(
                account,
                Taker {
                    process: Process::default(),
                    key: self.key.clone(),
                    via,
                },
            ),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Asker {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .copied()
            .unwrap_or(Peer::SameUser);
        Ok(Self {
            identity: parts.extensions.get::<Arc<Identity>>().cloned(),
            key: key_label(peer, parts.extensions.get::<Caller>()),
        })
    }
}
