//! Fake providers. Each module owns one provider family's endpoints, its state behind an
//! `Arc<Mutex<_>>` shared with the test's handle, and the faults a test can inject.

pub mod http;
pub mod oauth;
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
