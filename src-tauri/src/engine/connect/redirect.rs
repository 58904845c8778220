//! The one-shot loopback listener that receives the authorization redirect (RFC 8252 §7.3).
//! It answers every request with a small page, ignores requests that are not the redirect
//! (favicon, a stale tab, a wrong `state`) and returns the first that matches.
//! Written by hand over a TcpListener: one GET request line is all it reads, and the engine
//! stays free of an HTTP server framework.
//!
//! Each connection is read by a task of its own, so that a local process holding connections
//! open (its port is easy to find) cannot keep the browser's redirect waiting behind them. At
//! most [`MAX_CONNECTIONS`] are read at once; a newcomer past that closes the one accepted
//! longest ago, which is never the browser's: it sends its request at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use url::Url;

/// Connections read at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a connection has to send its request's head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the redirect carried.
pub enum Redirected {
    Code(String),
    /// The provider reported an error (`error=access_denied`, …) for our flow.
    Refused(String),
}

const DONE: &str = "<!doctype html><meta charset=utf-8><title>Tokenwarden</title><body style=\"font:16px system-ui;margin:3em\"><h1>Connected</h1><p>Tokenwarden received the authorization. You can close this tab.</p>";
const REFUSED: &str = "<!doctype html><meta charset=utf-8><title>Tokenwarden</title><body style=\"font:16px system-ui;margin:3em\"><h1>Not connected</h1><p>The provider did not grant access. You can close this tab and try again.</p>";
const MISMATCH: &str = "<!doctype html><meta charset=utf-8><title>Tokenwarden</title><body style=\"font:16px system-ui;margin:3em\"><h1>Not this sign-in</h1><p>This response does not belong to the sign-in Tokenwarden is waiting for (its state does not match). Use the link Tokenwarden printed most recently.</p>";

/// Listens on `bind` (127.0.0.1:PORT, or port 0 for any) for the redirect.
pub async fn bind(
    name: &crate::engine::names::AccountName,
    bind: &str,
) -> Result<TcpListener, crate::engine::EngineError> {
    TcpListener::bind(bind).await.map_err(|e| {
        crate::engine::EngineError::usage(
            name,
            format!("cannot listen on {bind} for the redirect ({e}); is another program using that port?"),
        )
    })
}

/// `http://127.0.0.1:PORT{path}` for a listener on a port the system chose (RFC 8252 §7.3).
pub fn loopback_uri(listener: &TcpListener, path: &str) -> Result<Url, crate::engine::EngineError> {
    let port = listener
        .local_addr()
        .map_err(|e| crate::engine::EngineError::Io(e.to_string()))?
        .port();
    Url::parse(&format!("http://127.0.0.1:{port}{path}"))
        .map_err(|e| crate::engine::EngineError::Io(e.to_string()))
}

/// Waits for the redirect to `path` whose `state` equals `state`. The connections still
/// being read when it arrives are closed (their tasks end with the set).
pub async fn receive(
    listener: &TcpListener,
    path: &str,
    state: &str,
) -> std::io::Result<Redirected> {
    let (path, state): (Arc<str>, Arc<str>) = (path.into(), state.into());
    let mut reading = JoinSet::new();
    // Oldest first, to know which one gives way at the cap.
    let mut accepted: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        tokio::select! {
            next = listener.accept() => {
                let (stream, _) = next?;
                accepted.retain(|task| !task.is_finished());
                if accepted.len() >= MAX_CONNECTIONS {
                    if let Some(oldest) = accepted.pop_front() {
                        oldest.abort();
                    }
                }
                let (path, state) = (path.clone(), state.clone());
                accepted.push_back(reading.spawn(async move { handle(stream, &path, &state).await }));
            }
            Some(done) = reading.join_next() => {
                if let Ok(Some(result)) = done {
                    return Ok(result);
                }
            }
        }
    }
}

async fn handle(mut stream: TcpStream, path: &str, state: &str) -> Option<Redirected> {
    let target = match tokio::time::timeout(READ_TIMEOUT, read_target(&mut stream)).await {
        Ok(Some(target)) => target,
        _ => return None,
    };
    let url = Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    if url.path() != path {
        respond(&mut stream, "404 Not Found", "").await;
        return None;
    }
    let param = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let state_ok =
        param("state").is_some_and(|s| crate::engine::secret::Secret::new(s).same_as(state));
    if !state_ok {
        respond(&mut stream, "400 Bad Request", MISMATCH).await;
        return None;
    }
    if let Some(code) = param("code") {
        respond(&mut stream, "200 OK", DONE).await;
        return Some(Redirected::Code(code));
    }
    let error = param("error").unwrap_or_else(|| "no_code".into());
    respond(&mut stream, "200 OK", REFUSED).await;
    // Quote only a code-shaped value.
    Some(Redirected::Refused(
        crate::engine::provider::error::code_shaped(&error),
    ))
}

/// The request target of a GET, from the request line; the rest of the head is drained.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = std::str::from_utf8(head.split(|b| *b == b'\n').next()?).ok()?;
    let mut parts = line.split_whitespace();
    (parts.next()? == "GET").then_some(())?;
    let target = parts.next()?;
    target.starts_with('/').then(|| target.to_owned())
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = stream.write_all(response.as_bytes()).await {
        tracing::debug!(error = %e, "could not answer the browser");
    }
    let _ = stream.shutdown().await; // the browser may already be gone; nothing to do then
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle connections, more than are read at once, opened before the browser's: the
    /// redirect is still taken at once.
    #[tokio::test]
    async fn idle_connections_do_not_keep_the_redirect_waiting() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS * 2 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        let browser = tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"GET /callback?code=c1&state=s1 HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            answer
        });
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            receive(&listener, "/callback", "s1"),
        )
        .await
        .expect("taken within 5 s")
        .unwrap();
        assert!(matches!(got, Redirected::Code(code) if code == "c1"));
        assert!(browser.await.unwrap().starts_with("HTTP/1.1 200"));
        drop(idle);
    }
}
