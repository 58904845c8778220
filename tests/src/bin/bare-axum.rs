//! The practical ceiling for serving a token on this machine: axum answering a fixed
//! ~100-byte token JSON with no key check, no lookup, nothing. `make bench` loads it beside
//! Tokenwarden in the same run, so each figure has its baseline.
//!
//!   bare-axum PORT        listens on 127.0.0.1:PORT; prints "listening" once it does
//!   bare-axum unix:PATH   listens on the Unix socket PATH instead (the socket's ceiling)

use axum::http::header;
use axum::routing::get;
use axum::Router;

const ANSWER: &str = r#"{"access_token":"bench-0123456789abcdef0123456789abcdef","token_type":"Bearer","expires_in":7140}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let answer = || async { ([(header::CONTENT_TYPE, "application/json")], ANSWER) };
    let app = Router::new()
        .route("/token", get(answer))
        .route("/v1/accounts/{name}/token", get(answer));
    #[cfg(unix)]
    if let Some(path) = arg.strip_prefix("unix:") {
        let listener = tokio::net::UnixListener::bind(path)?;
        println!("listening {path}");
        return axum::serve(listener, app).await;
    }
    let port: u16 = arg.parse().unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
