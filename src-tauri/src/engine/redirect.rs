//! The one-shot loopback listener that receives the authorization redirect (RFC 8252 §7.3).
//! It answers every request with a small page, ignores requests that are not the redirect
//! (favicon, a stale tab, a wrong `state`) and returns the first that matches.
//! Written by hand over a TcpListener: one GET request line is all it reads, and the engine
//! stays free of an HTTP server framework.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// What the redirect carried.
pub enum Redirected {
    Code(String),
    /// The provider reported an error (`error=access_denied`, …) for our flow.
    Refused(String),
}

const DONE: &str = "<!doctype html><meta charset=utf-8><title>Tokenwarden</title><body style=\"font:16px system-ui;margin:3em\"><h1>Connected</h1><p>Tokenwarden received the authorization. You can close this tab.</p>";
const REFUSED: &str = "<!doctype html><meta charset=utf-8><title>Tokenwarden</title><body style=\"font:16px system-ui;margin:3em\"><h1>Not connected</h1><p>The provider did not grant access. You can close this tab and try again.</p>";
const MISMATCH: &str = "<!doctype html><meta charset=utf-8><title>Tokenwarden</title><body style=\"font:16px system-ui;margin:3em\"><h1>Not this sign-in</h1><p>This response does not belong to the sign-in Tokenwarden is waiting for (its state does not match). Use the link Tokenwarden printed most recently.</p>";

/// Waits for the redirect to `path` whose `state` equals `state`.
pub async fn receive(
    listener: &TcpListener,
    path: &str,
    state: &str,
) -> std::io::Result<Redirected> {
    loop {
        let (stream, _) = listener.accept().await?;
        if let Some(result) = handle(stream, path, state).await {
            return Ok(result);
        }
    }
}

async fn handle(mut stream: TcpStream, path: &str, state: &str) -> Option<Redirected> {
    let target = match tokio::time::timeout(Duration::from_secs(10), read_target(&mut stream)).await
    {
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
    Some(Redirected::Refused(super::provider::error::code_shaped(
        &error,
    )))
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
