//! Who gets in, checked before any route runs: a `Host` that is the address we listen on
//! (DNS rebinding), no `Origin` (no web page may read tokens), and a bearer API key on
//! everything but `/healthz`. Failed authentications are counted per client address; past
//! the limit they get 429 instead of 401. Every answer is counted for `/metrics`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;

const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FAILURE_LIMIT: u32 = 20;

pub struct Guard {
    /// Host header values that name us.
    hosts: Vec<String>,
    allow_remote: bool,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Guard {
    pub fn new(listen: SocketAddr, allow_remote: bool) -> Self {
        let port = listen.port();
        let mut hosts = vec![listen.to_string()];
        if listen.ip().is_loopback() {
            hosts.push(format!("localhost:{port}"));
        }
        Self {
            hosts,
            allow_remote,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn host_ok(&self, host: Option<&str>) -> bool {
        // With allow_remote the machine is reached by names we cannot know.
        self.allow_remote
            || host.is_some_and(|h| self.hosts.iter().any(|ours| ours.eq_ignore_ascii_case(h)))
    }

    /// Counts a failure; true when this address is past the limit.
    fn failed(&self, ip: IpAddr) -> bool {
        let mut failures = self.failures.lock().expect("poisoned");
        let now = Instant::now();
        failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        let entry = failures.entry(ip).or_insert((0, now));
        entry.0 += 1;
        entry.0 > FAILURE_LIMIT
    }
}

pub async fn check(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Owned copies: a `&Request` held across `.await` would make this future !Send.
    let (headers, path) = (request.headers().clone(), request.uri().path().to_owned());
    let mut request = request;
    let response = match admit(&state, peer, &headers, &path).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    };
    state
        .engine
        .metrics()
        .api_request(&route, response.status().as_u16());
    response
}

/// Who made an admitted request: the label of the key it presented (`ENGINE_LABEL` for the
/// engine's own key, which only processes that can read the keychain have).
#[derive(Clone, Debug)]
pub struct Caller(pub Option<String>);

impl Caller {
    pub fn is_engine_key(&self) -> bool {
        self.0.as_deref() == Some(crate::engine::api_keys::ENGINE_LABEL)
    }
}

async fn admit(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    path: &str,
) -> Result<Caller, ApiError> {
    if headers.contains_key(header::ORIGIN) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "requests from web pages (with an Origin header) are refused",
        ));
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !state.guard.host_ok(host) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "the Host header does not name this server's address",
        ));
    }
    if path == "/healthz" {
        return Ok(Caller(None));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim);
    let label = match presented {
        Some(key) if !key.is_empty() => state.engine.api_keys().verify(key).await,
        _ => None,
    };
    if label.is_some() {
        return Ok(Caller(label));
    }
    // The presented key is never logged: it may be a real key with a typo.
    let reason = if presented.is_some() {
        "wrong key"
    } else {
        "no key"
    };
    tracing::warn!(client = %peer.ip(), path, reason, "API authentication failed");
    if state.guard.failed(peer.ip()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            "too many failed authentications from this address; wait a minute",
        ));
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send `Authorization: Bearer <key>`; create a key with `tokenwarden api-key create LABEL`",
    ))
}
