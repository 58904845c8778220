//! Fake providers. Each module owns one provider family's endpoints, its state behind an
//! `Arc<Mutex<_>>` shared with the test's handle, and the faults a test can inject.

pub mod git;
pub mod http;
pub mod oauth;
pub mod oidc;
pub mod wechat;

use std::collections::HashMap;
use std::net::SocketAddr;

/// Binds 127.0.0.1:0 and serves `router` on the current runtime. The server lives as long as the
/// test's runtime: each `#[tokio::test]` has its own, so nothing outlives its test.
pub(crate) async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a fake provider on 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address of a fake");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// `a=1&b=2` → map. Repeated keys keep the last value, which is all the fakes need.
pub(crate) fn parse_form(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// A unique, recognisable token value: `<prefix><kind>-<n>-<random hex>`. The prefix lets a
/// leak test plant canaries; the random part keeps values unguessable across fake instances.
pub(crate) fn token_value(prefix: &str, kind: &str, n: u64) -> String {
    format!("{prefix}{kind}-{n}-{:016x}", rand::random::<u64>())
}

/// A server that must never be called: it records every request it gets (method, target,
/// headers and body as text), so a test can show that nothing, and no secret, reached it.
pub struct Catcher {
    pub addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Catcher {
    pub async fn start() -> Self {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                record.lock().expect("catcher").push(format!(
                    "{} {} {:?} {}",
                    parts.method,
                    parts.uri,
                    parts.headers,
                    String::from_utf8_lossy(&body)
                ));
                "caught"
            }
        });
        let addr = serve(router).await;
        Self { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}/caught", self.addr)
    }

    /// Every request so far, as text.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("catcher").clone()
    }
}
