//! The API's accept loop, in place of `axum::serve`, which has no timeouts and no cap: any
//! local user could hold idle sockets until the process runs out of file descriptors, and
//! then refreshes and keychain writes fail. Here:
//! * at most `max_connections` connections are served at once; the next ones get a short
//!   503 and are closed, and that is logged once a minute, not once a connection;
//! * a connection must send a request's headers within `idle_timeout`, and that deadline
//!   starts again after each answer, so idle keep-alive connections are closed too;
//! * the open-file limit is raised (up to the hard limit) so the cap, not the OS, decides.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::Router;
use futures_util::future::Either;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::fast::FastPath;
use crate::engine::config::ApiSettings;

/// Requests in flight at shutdown get this long to finish.
const DRAIN: Duration = Duration::from_secs(10);
/// File descriptors kept for everything but API connections: the keychain's D-Bus
/// connection, the history database, provider requests, logs.
const FD_RESERVE: usize = 256;
/// Refused connections and accept errors are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub(super) const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 109\r\n\r\n{\"error\":\"too_many_connections\",\"message\":\"the API is serving its maximum of connections; try again shortly\"}";

/// Who is at the other end of an API connection; every request carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A client over TCP: it must show a key.
    Tcp(SocketAddr),
    /// A process of this engine's own user on its Unix socket, as the kernel vouches (the
    /// peer's credentials): let in as the engine's own key would be, without one, so that
    /// the CLI need not read that key from the keychain on every call.
    SameUser,
    /// A process of another user on the Unix socket: never served.
    OtherUser(u32),
}

/// A listening socket the accept loop can serve.
pub trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Peer)>> + Send;

    /// A best-effort answer to a connection past the cap: never waits (the socket's send
    /// buffer is empty), and then the connection is closed.
    fn refuse(stream: &Self::Stream) {
        let _ = stream;
    }
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, Peer)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Peer::Tcp(peer)))
    }

    fn refuse(stream: &TcpStream) {
        let _ = stream.try_write(REFUSAL);
    }
}

/// The connections served at once, over every listener together (TCP and the Unix socket
/// share one cap, and the open-file limit is raised once for it).
#[derive(Clone)]
pub struct Cap {
    permits: Arc<Semaphore>,
    size: usize,
}

impl Cap {
    pub fn new(settings: &ApiSettings) -> Self {
        let size = connection_cap(settings.max_connections);
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }
}

/// Serves `app` until `stop`, then gives requests in flight [`DRAIN`] to finish.
pub async fn serve<L: Accept>(
    listener: L,
    app: Router,
    fast: Arc<FastPath>,
    settings: &ApiSettings,
    cap: Cap,
    stop: CancellationToken,
) -> io::Result<()> {
    let Cap { permits, size: cap } = cap;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.idle_timeout);
    let graceful = GracefulShutdown::new();
    let (mut refused, mut failed, mut strangers) =
        (Throttled::new(), Throttled::new(), Throttled::new());
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or the like: wait a moment rather than spin; the
                    // loop itself must not end, or the engine could no longer be asked.
                    if let Some(count) = failed.note() {
                        tracing::warn!(count, error = %e, "the API could not accept connections (logged at most once a minute)");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Peer::OtherUser(uid) = peer {
            if let Some(count) = strangers.note() {
                tracing::warn!(count, uid, "a process of another user was refused on the API's Unix socket (logged at most once a minute)");
            }
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            L::refuse(&stream);
            if let Some(count) = refused.note() {
                tracing::warn!(count, cap, "API connections refused: the connection cap is reached ([api] max_connections) (logged at most once a minute)");
            }
            continue;
        };
        let (app, fast) = (app.clone(), fast.clone());
        let service = hyper::service::service_fn(move |mut request: Request<_>| {
            match fast.answer(&request, peer) {
                Some(answer) => Either::Left(std::future::ready(Ok(answer))),
                None => {
                    request.extensions_mut().insert(peer);
                    Either::Right(app.clone().oneshot(request))
                }
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away or times out is its own business; nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "API requests still in flight after {}s were cut off",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

/// The cap, lowered when the open-file limit cannot be raised to hold it.
fn connection_cap(wanted: usize) -> usize {
    let needed = (wanted + FD_RESERVE) as u64;
    match raise_open_file_limit(needed) {
        Some(limit) if limit < needed => {
            let cap = (limit as usize).saturating_sub(FD_RESERVE).max(16);
            tracing::warn!(
                wanted,
                cap,
                open_file_limit = limit,
                "the open-file limit is too low for [api] max_connections; serving fewer at once"
            );
            cap
        }
        _ => wanted,
    }
}

#[cfg(unix)]
fn raise_open_file_limit(needed: u64) -> Option<u64> {
    rlimit::increase_nofile_limit(needed).ok()
}

#[cfg(not(unix))]
fn raise_open_file_limit(_needed: u64) -> Option<u64> {
    None
}

/// A warning logged at most once per [`LOG_EVERY`], with how many it stands for.
struct Throttled {
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttled {
    fn new() -> Self {
        Self {
            last: None,
            unlogged: 0,
        }
    }

    /// One more occurrence; `Some(count)` when it is time to log the `count` it stands for.
    fn note(&mut self) -> Option<u64> {
        self.unlogged += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_is_a_whole_json_answer() {
        let text = std::str::from_utf8(super::REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "too_many_connections");
    }
}
