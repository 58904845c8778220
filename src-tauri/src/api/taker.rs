//! Who takes a token over the API, for the ledger (`engine::ledger`): the process at the
//! other end of the connection, looked up once per connection on the first token it takes
//! (a keep-alive client pays for the lookup once), and the label of the key it showed.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::guard::Caller;
use super::peer::Peer;
use crate::engine::{Process, Taker, Via};

/// The other end of one connection.
pub struct Identity {
    how: How,
    process: OnceLock<Process>,
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
        })
    }

    /// The process, asked of the kernel the first time only.
    fn process(&self) -> Process {
        self.process
            .get_or_init(|| match self.how {
                How::Tcp { peer, ours } => Process::at_tcp(peer, ours),
                #[cfg(unix)]
                How::Unix(Some(pid)) => Process::of_pid(pid),
                #[cfg(unix)]
                How::Unix(None) => Process::default(),
                How::Unknown => Process::default(),
            })
            .clone()
    }

    pub fn taker(&self, key: Option<String>, via: Via) -> Taker {
        Taker {
            process: self.process(),
            key,
            via,
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

/// Who is asking, in a handler: `asker.taker(Via::Api)`.
pub struct Asker {
    identity: Option<Arc<Identity>>,
    key: Option<String>,
}

impl Asker {
    pub fn taker(&self, via: Via) -> Taker {
        match &self.identity {
            Some(identity) => identity.taker(self.key.clone(), via),
            None => Taker {
                process: Process::default(),
                key: self.key.clone(),
                via,
            },
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
