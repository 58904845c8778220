//! Who gets in, checked before any route runs: a `Host` that is the address we listen on
//! (DNS rebinding), no `Origin` (no web page may read tokens), and a bearer API key on
//! everything but `/healthz`. Failed authentications are counted per client (all of loopback
//! is one client: any local process can pick any of 127/8); past the limit they get 429
//! instead of 401, and are logged once per window instead of once each. A key that works is
//! never refused for others' failures. Every answer is counted for `/metrics`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::peer::Peer;
use super::AppState;
use crate::engine::{AccountName, EngineEvent, KeyHolder, ENGINE_LABEL};

const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FAILURE_LIMIT: u32 = 20;
/// The most clients whose failures are counted at once (remote ones, with `allow_remote`);
/// past it, the newcomers share one count, so the map cannot grow without bound.
const MAX_CLIENTS: usize = 4096;

pub struct Guard {
    /// Host header values that name us.
    hosts: Vec<String>,
    allow_remote: bool,
    failures: Mutex<Failures>,
}

/// Who failures are counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Client {
    Loopback,
    Remote(IpAddr),
    /// Everyone past [`MAX_CLIENTS`].
    Overflow,
}

impl Client {
    fn of(ip: IpAddr) -> Self {
        if ip.is_loopback() || ip.to_canonical().is_loopback() {
            Self::Loopback
        } else {
            Self::Remote(ip)
        }
    }
}

/// What to do with one more failed authentication.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    limited: bool,
    /// Only the first failure of a window, and the one that reaches the limit, are logged.
    log: bool,
}

#[derive(Default)]
struct Failures {
    counts: HashMap<Client, (u32, Instant)>,
    swept: Option<Instant>,
}

impl Failures {
    fn count(&mut self, client: Client, now: Instant) -> Verdict {
        // Expired windows are swept once a window, or once a second while the map is full:
        // never on every failure (a flood of failures would scan the whole map each time).
        let every = if self.counts.len() >= MAX_CLIENTS {
            Duration::from_secs(1)
        } else {
            FAILURE_WINDOW
        };
        if self.swept.is_none_or(|t| now.duration_since(t) >= every) {
            self.counts
                .retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            self.swept = Some(now);
        }
        let client = if self.counts.len() >= MAX_CLIENTS && !self.counts.contains_key(&client) {
            Client::Overflow
        } else {
            client
        };
        let entry = self.counts.entry(client).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        Verdict {
            limited: entry.0 > FAILURE_LIMIT,
            log: entry.0 == 1 || entry.0 == FAILURE_LIMIT + 1,
        }
    }
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
            failures: Mutex::new(Failures::default()),
        }
    }

    pub(super) fn host_ok(&self, host: Option<&str>) -> bool {
        // With allow_remote the machine is reached by names we cannot know.
        self.allow_remote
            || host.is_some_and(|h| self.hosts.iter().any(|ours| ours.eq_ignore_ascii_case(h)))
    }

    fn failed(&self, ip: IpAddr) -> Verdict {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.count(Client::of(ip), Instant::now())
    }
}

pub async fn check(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let route = route_label(request.extensions().get::<MatchedPath>());
    // The accept loop puts it on every request; a request without one is nobody we know.
    let peer = request
        .extensions()
        .get::<Peer>()
        .copied()
        .unwrap_or(Peer::OtherUser(u32::MAX));
    // What admission needs, taken out so that no `&Request` is held across `.await` (that
    // would make this future !Send); header values are reference-counted, not copied.
    let asked = Asked {
        origin: request.headers().contains_key(header::ORIGIN),
        host: request.headers().get(header::HOST).cloned(),
        authorization: request.headers().get(header::AUTHORIZATION).cloned(),
        healthz: request.uri().path() == "/healthz",
        tokenboy_name: (route == super::paths::TOKENBOY)
            .then(|| tokenboy_name(request.uri().query()))
            .flatten(),
    };
    let response = match admit(&state, peer, &asked, route).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    };
    state
        .engine
        .metrics()
        .api_request(route, response.status().as_u16());
    response
}

/// The route as `/metrics` labels it: one of the fixed [`super::paths`], so that counting a
/// request allocates nothing.
fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    matched
        .and_then(|m| super::paths::ALL.iter().find(|r| **r == m.as_str()))
        .copied()
        .unwrap_or("unmatched")
}

/// The parts of a request that admission looks at.
struct Asked {
    origin: bool,
    host: Option<header::HeaderValue>,
    authorization: Option<header::HeaderValue>,
    healthz: bool,
    /// `name` of a `GET /token?name=` request.
    tokenboy_name: Option<AccountName>,
}

fn tokenboy_name(query: Option<&str>) -> Option<AccountName> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "name")
        .and_then(|(_, v)| v.parse().ok())
}

/// Who made an admitted request: the holder of the key it presented (`None` only on
/// `/healthz`, which needs no key).
#[derive(Clone, Debug)]
pub struct Caller(pub Option<KeyHolder>);

impl Caller {
    /// The engine's own key, which only processes that can read the keychain have.
    pub fn is_engine_key(&self) -> bool {
        self.0.as_ref().is_some_and(|h| h.label == ENGINE_LABEL)
    }

    /// The accounts a limited key may see; `None` for a key to all of them.
    pub fn scope(&self) -> Option<&[AccountName]> {
        self.0.as_ref()?.accounts.as_deref()
    }

    pub fn may_see(&self, name: &AccountName) -> bool {
        self.0.as_ref().is_none_or(|holder| holder.may_see(name))
    }

    /// Whether it may change accounts: the engine's own key and this user's processes on
    /// the Unix socket, and keys made with `--write`.
    pub fn may_write(&self) -> bool {
        self.0.as_ref().is_some_and(|holder| holder.write)
    }

    pub fn may_see_str(&self, name: &str) -> bool {
        self.scope()
            .is_none_or(|scope| scope.iter().any(|a| a.as_str() == name))
    }

    /// Events about an account go to keys that may see it; the others (a config reload)
    /// only to keys to all accounts.
    pub fn may_hear(&self, event: &EngineEvent) -> bool {
        match event.account() {
            Some(name) => self.may_see(name),
            None => self.scope().is_none(),
        }
    }
}

async fn admit(
    state: &AppState,
    peer: Peer,
    asked: &Asked,
    route: &str,
) -> Result<Caller, ApiError> {
    if asked.origin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "requests from web pages (with an Origin header) are refused",
        ));
    }
    let peer = match peer {
        Peer::Tcp(address) => address,
        // No Host to check (no browser reaches a Unix socket) and no key to ask for: the
        // kernel said who this is.
        Peer::SameUser => return Ok(Caller(Some(KeyHolder::engine()))),
        Peer::OtherUser(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_user",
                "only the user running the engine may use its socket",
            ))
        }
    };
    let host = asked.host.as_ref().and_then(|h| h.to_str().ok());
    if !state.guard.host_ok(host) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "the Host header does not name this server's address",
        ));
    }
    if asked.healthz {
        return Ok(Caller(None));
    }
    let presented = asked
        .authorization
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim);
    // The accounts the config lets TokenBoy clients read without a key, from loopback only
    // (the config refuses the list with any other listen address).
    if let (None, Some(name)) = (presented, &asked.tokenboy_name) {
        let keyless = &state.engine.config().api.keyless_tokenboy;
        if peer.ip().is_loopback() && keyless.contains(name) {
            return Ok(Caller(Some(KeyHolder {
                label: "(keyless tokenboy)".into(),
                accounts: Some(std::sync::Arc::from([name.clone()])),
                write: false,
            })));
        }
    }
    let holder = match presented {
        Some(key) if !key.is_empty() => state.engine.api_keys().verify(key).await,
        _ => None,
    };
    if holder.is_some() {
        return Ok(Caller(holder));
    }
    // Still closed, but honest: "wrong key" would make a script with a new, valid key give
    // up while the keychain is locked or restarting. No failure is counted: nothing can be
    // learned from an answer every key gets.
    if presented.is_some_and(|k| !k.is_empty()) && state.engine.api_keys().unreadable() {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "keychain_unavailable",
            "the API keys cannot be read from the keychain right now (locked, or restarting); try again shortly",
        );
        error.retry_after = Some(1);
        return Err(error);
    }
    // The presented key is never logged: it may be a real key with a typo.
    let reason = if presented.is_some() {
        "wrong key"
    } else {
        "no key"
    };
    let verdict = state.guard.failed(peer.ip());
    if verdict.log && verdict.limited {
        tracing::warn!(client = %peer.ip(), route, reason, "API authentication failed {FAILURE_LIMIT} times within a minute from this client; answering 429 and not logging more until the minute is over");
    } else if verdict.log {
        tracing::warn!(client = %peer.ip(), route, reason, "API authentication failed (further failures within a minute are counted, not logged)");
    }
    if verdict.limited {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_of_loopback_is_one_client_and_logs_twice_a_window() {
        let mut failures = Failures::default();
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 0..50u8 {
            let ip: IpAddr = [127, 0, i, 1].into();
            let v = failures.count(Client::of(ip), t0);
            logged += usize::from(v.log);
            assert_eq!(v.limited, u32::from(i) >= FAILURE_LIMIT, "failure {i}");
        }
        assert_eq!(
            logged, 2,
            "the first failure and the one that trips the limit"
        );
        let v6: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(failures.count(Client::of(v6), t0).limited);
        // A new window starts over.
        let later = t0 + FAILURE_WINDOW;
        assert_eq!(
            failures.count(Client::Loopback, later),
            Verdict {
                limited: false,
                log: true
            }
        );
    }

    #[test]
    fn the_map_is_bounded() {
        let mut failures = Failures::default();
        let now = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 500) {
            failures.count(Client::Remote(IpAddr::from(i.to_be_bytes())), now);
        }
        assert_eq!(failures.counts.len(), MAX_CLIENTS + 1, "and the overflow");
        assert!(failures.counts.contains_key(&Client::Overflow));
    }
}
