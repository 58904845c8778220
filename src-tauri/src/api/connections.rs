//! The API's accept loop, in place of `axum::serve`, which has no timeouts and no cap: any
//! local user could hold idle sockets until the process runs out of file descriptors, and
//! then refreshes and keychain writes fail. Here:
//! * at most `max_connections` connections are served at once over TCP, and up to 1,024 on
//!   the Unix socket, which is never refused for TCP's load (`slots`);
//! * a newcomer past the cap takes the place of the connection idle longest, which is closed
//!   (never one mid-request): a local process holding more idle sockets than the cap must
//!   not keep every client out. Only when every connection is mid-request is the newcomer
//!   given a short 503 and closed. Either is logged once a minute, not once a connection;
//! * a connection must send a request's headers within `idle_timeout`, and that deadline
//!   starts again after each answer, so idle keep-alive connections are closed too;
//! * the open-file limit is raised (up to the hard limit) so the cap, not the OS, decides.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use futures_util::future::Either;
use futures_util::TryFutureExt as _;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::fast::FastPath;
use super::peer::Peer;
use super::slots::{Admitted, Busy, Slot, Slots};
use super::taker::Identity;
use crate::engine::ApiSettings;

/// Requests in flight at shutdown get this long to finish.
const DRAIN: Duration = Duration::from_secs(10);
/// File descriptors kept for everything but API connections: the keychain's D-Bus
/// connection, the history database, provider requests, logs.
const FD_RESERVE: usize = 256;
/// Refused connections and accept errors are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The most connections on the Unix socket: this user's own processes (the CLI), which ask
/// and go; past it the idlest of them gives way too. Not `max_connections`, which may be set
/// in the tens of thousands for TCP clients and would double the descriptors asked for.
const UNIX_MAX: usize = 1024;
/// How long a connection closed to make room has to send the end of its last answer.
const FLUSH: Duration = Duration::from_secs(1);

pub(super) const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 109\r\n\r\n{\"error\":\"too_many_connections\",\"message\":\"the API is serving its maximum of connections; try again shortly\"}";

/// A listening socket the accept loop can serve.
pub trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn accept(
        &self,
    ) -> impl Future<Output = io::Result<(Self::Stream, Peer, Arc<Identity>)>> + Send;

    /// A best-effort answer to a connection past the cap: never waits (the socket's send
    /// buffer is empty), and then the connection is closed.
    fn refuse(stream: &Self::Stream) {
        let _ = stream;
    }
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, Peer, Arc<Identity>)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        let identity = Identity::tcp(peer, stream.local_addr().ok());
        Ok((stream, Peer::Tcp(peer), identity))
    }

    fn refuse(stream: &TcpStream) {
        let _ = stream.try_write(REFUSAL);
    }
}

/// The connections served at once: `max_connections` over TCP and up to [`UNIX_MAX`] on the
/// Unix socket, each listener its own, so that TCP clients cannot fill the socket's places.
/// The open-file limit is raised once for both.
pub struct Caps {
    pub tcp: Arc<Slots>,
    pub unix: Arc<Slots>,
}

impl Caps {
    pub fn new(settings: &ApiSettings) -> Self {
        let (tcp, unix) = connection_caps(settings.max_connections);
        Self {
            tcp: Slots::new(tcp),
            unix: Slots::new(unix),
        }
    }
}

/// Serves `app` until `stop`, then gives requests in flight [`DRAIN`] to finish.
pub async fn serve<L: Accept>(
    listener: L,
    app: Router,
    fast: Arc<FastPath>,
    settings: &ApiSettings,
    slots: Arc<Slots>,
    stop: CancellationToken,
) -> io::Result<()> {
    let cap = slots.size();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.idle_timeout);
    let tasks = TaskTracker::new();
    let (mut refused, mut shed, mut failed, mut strangers) = (
        Throttled::new(),
        Throttled::new(),
        Throttled::new(),
        Throttled::new(),
    );
    loop {
        let (stream, peer, identity) = tokio::select! {
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
        let slot = match slots.admit() {
            Admitted::Free(slot) => slot,
            Admitted::Shed(slot) => {
                if let Some(count) = shed.note() {
                    tracing::warn!(count, cap, "API connections idle longest were closed to make room for new ones: the connection cap is reached ([api] max_connections) (logged at most once a minute)");
                }
                slot
            }
            Admitted::Full => {
                L::refuse(&stream);
                if let Some(count) = refused.note() {
                    tracing::warn!(count, cap, "API connections refused: the connection cap is reached and every connection is mid-request ([api] max_connections) (logged at most once a minute)");
                }
                continue;
            }
        };
        let slot = Arc::new(slot);
        let (app, fast, serving) = (app.clone(), fast.clone(), slot.clone());
        let service = hyper::service::service_fn(move |mut request: Request<_>| {
            let busy = serving.begin();
            match fast.answer(&request, peer, &identity) {
                Some(answer) => Either::Left(std::future::ready(Ok(tracked(answer, busy)))),
                None => {
                    request.extensions_mut().insert(peer);
                    request.extensions_mut().insert(identity.clone());
                    Either::Right(
                        app.clone()
                            .oneshot(request)
                            .map_ok(move |answer| tracked(answer, busy)),
                    )
                }
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                // A client that goes away or times out is its own business; nothing to report.
                _ = connection.as_mut() => return,
                () = slot.shed() => {}
                () = stop.cancelled() => {}
            }
            close(connection, &slot).await;
        });
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        tracing::warn!(
            "API requests still in flight after {}s were cut off",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

/// Closes a connection that was told to go (to make room, or at shutdown): at once when it
/// never asked anything; after the end of its last answer when idle; after its request when
/// one is in flight (its answer's end, or [`DRAIN`] at shutdown, bounds that).
async fn close<C: GracefulConnection>(mut connection: Pin<&mut C>, slot: &Slot) {
    if !slot.is_busy() && !slot.has_served() {
        return;
    }
    connection.as_mut().graceful_shutdown();
    if slot.is_busy() {
        let _ = connection.await;
    } else {
        let _ = tokio::time::timeout(FLUSH, connection).await;
    }
}

/// The answer, whose connection counts as mid-request until its body is all handed over.
fn tracked(answer: Response, busy: Busy) -> Response {
    answer.map(|body| Body::new(Tracked { body, _busy: busy }))
}

struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The caps of TCP and of the Unix socket, lowered when the open-file limit cannot be raised
/// to hold both.
fn connection_caps(wanted: usize) -> (usize, usize) {
    let unix = wanted.min(UNIX_MAX);
    let needed = (wanted + unix + FD_RESERVE) as u64;
    match raise_open_file_limit(needed) {
        Some(limit) if limit < needed => {
            let room = (limit as usize).saturating_sub(FD_RESERVE);
            let unix = unix.min(room / 2).max(16);
            let cap = room.saturating_sub(unix).max(16);
            tracing::warn!(
                wanted,
                cap,
                open_file_limit = limit,
                "the open-file limit is too low for [api] max_connections; serving fewer at once"
            );
            (cap, unix)
        }
        _ => (wanted, unix),
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
