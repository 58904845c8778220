//! The token routes' everyday answer, given without the router: `GET
//! /v1/accounts/{name}/token` (with at most `min_valid=N`) and `GET /token?name=N`, with a
//! key already known, for an account it may see, whose token is valid now. Every request
//! is on the hot path of some program, and the router's extractors, middleware and boxed
//! services cost as much as the rest together (BENCHMARKS.md). Anything else — a refusal,
//! a refresh to wait for, an unusual query, a key to read from the keychain — returns
//! `None` and goes through the router, which answers it exactly as before; the answers
//! given here are byte for byte the router's (tested in `tests/tests/api.rs`).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;

use super::peer::Peer;
use super::taker::Identity;
use super::AppState;
use crate::engine::{AccountName, RequestLabels, Via};

pub struct FastPath {
    state: AppState,
    /// Metric handles made once: counting an answer is one atomic add.
    token_ok: Counter,
    tokenboy_ok: Counter,
}

impl FastPath {
    pub fn new(state: AppState) -> Self {
        let ok = |route| {
            state
                .engine
                .metrics()
                .api_requests
                .get_or_create(&RequestLabels { route, status: 200 })
                .clone()
        };
        Self {
            token_ok: ok(super::paths::TOKEN),
            tokenboy_ok: ok(super::paths::TOKENBOY),
            state,
        }
    }

    /// The answer, when this request is the everyday case; `None` sends it to the router.
    pub fn answer<B>(
        &self,
        request: &Request<B>,
        peer: Peer,
        identity: &Identity,
    ) -> Option<Response<Body>> {
        // A connection's first token waits for the kernel to say who took it: the router's.
        if request.method() != Method::GET || !identity.resolved() {
            return None;
        }
        let uri = request.uri();
        let (raw_name, min_valid, tokenboy) = if uri.path() == "/token" {
            (uri.query()?.strip_prefix("name=")?, 0, true)
        } else {
            let raw = uri
                .path()
                .strip_prefix("/v1/accounts/")?
                .strip_suffix("/token")?;
            let min_valid = match uri.query() {
                None => 0,
                Some(q) => q.strip_prefix("min_valid=")?.parse().ok()?,
            };
            (raw, min_valid, false)
        };
        // Percent-encoded and other unusual names are the router's to decode or refuse.
        let name: AccountName = raw_name.parse().ok()?;
        let headers = request.headers();
        if headers.contains_key(header::ORIGIN) {
            return None;
        }
        // This user's own processes on the Unix socket see every account, as the engine's
        // key does; over TCP the Host must name us and the key must be one we know.
        let mut label = None;
        if peer != Peer::SameUser {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            if !self.state.guard.host_ok(host) {
                return None;
            }
            let key = headers
                .get(header::AUTHORIZATION)?
                .to_str()
                .ok()?
                .strip_prefix("Bearer ")?
                .trim();
            let holder = self.state.engine.api_keys().verify_cached(key)??;
            if !holder.may_see(&name) {
                return None;
            }
            label = Some(holder.label.clone());
        }
        // A program not yet allowed may have to wait for the user: the router's.
        if !self
            .state
            .engine
            .approved_at_hand(&name, identity.process_ref())
        {
            return None;
        }
        let view = self
            .state
            .engine
            .token_at_hand(&name, Duration::from_secs(min_valid))?;
        let body = if tokenboy {
            serde_json::to_vec(&super::tokenboy::TokenBoyAnswer::of(&view)).ok()?
        } else {
            serde_json::to_vec(&view).ok()?
        };
        let via = if tokenboy {
            self.tokenboy_ok.inc();
            Via::Tokenboy
        } else {
            self.token_ok.inc();
            Via::Api
        };
        identity.took(&self.state.engine, &name, label, via);
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Some(response)
    }
}
