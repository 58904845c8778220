//! The API's accept loop, in place of `axum::serve`, which has no timeouts and no cap: any
//! local user could hold idle sockets until the process runs out of file descriptors, and
//! then refreshes and keychain writes fail. Here:
//! * at most `max_connections` connections are served at once; the next ones get a short
//!   503 and are closed, and that is logged once a minute, not once a connection;
//! * a connection must send a request's headers within `idle_timeout`, and that deadline
//!   starts again after each answer, so idle keep-alive connections are closed too;
//! * the open-file limit is raised (up to the hard limit) so the cap, not the OS, decides.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use futures_util::future::Either;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
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

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 109\r\n\r\n{\"error\":\"too_many_connections\",\"message\":\"the API is serving its maximum of connections; try again shortly\"}";

/// Serves `app` until `stop`, then gives requests in flight [`DRAIN`] to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    fast: Arc<FastPath>,
    settings: &ApiSettings,
    stop: CancellationToken,
) -> io::Result<()> {
    let cap = connection_cap(settings.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.idle_timeout);
    let graceful = GracefulShutdown::new();
    let mut refused = Throttled::new(
        "API connections refused: the connection cap is reached ([api] max_connections)",
    );
    let mut failed = Throttled::new("the API could not accept connections");
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or the like: wait a moment rather than spin; the
                    // loop itself must not end, or the engine could no longer be asked.
                    failed.note(cap, Some(&e));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(&stream);
            refused.note(cap, None);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, fast) = (app.clone(), fast.clone());
        let service = hyper::service::service_fn(move |mut request: Request<_>| {
            match fast.answer(&request) {
                Some(answer) => Either::Left(std::future::ready(Ok(answer))),
                None => {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
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

/// A best-effort answer to a connection past the cap: never waits (the socket's send
/// buffer is empty), and then the connection is closed.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(REFUSAL);
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
    what: &'static str,
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttled {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            last: None,
            unlogged: 0,
        }
    }

    fn note(&mut self, cap: usize, error: Option<&io::Error>) {
        self.unlogged += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return;
        }
        let error = error.map(ToString::to_string);
        tracing::warn!(
            count = self.unlogged,
            cap,
            error,
            "{} (logged at most once a minute)",
            self.what
        );
        self.last = Some(now);
        self.unlogged = 0;
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
