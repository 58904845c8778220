//! A minimal token endpoint for the `http` provider (TokenBoy style), fast enough for scale tests.
//!
//! Owns one endpoint and a counter per account:
//! * `GET /token?account=NAME` → `{"access_token": "<unique>", "expires_in": N}`, or, with
//!   [`State::wrong_clock`], `{"access_token", "expires_at": <unix seconds>}` and a `Date`
//!   header read from a clock that is off (a provider whose clock is behind)
//!
//! It does no other work, so timings measured against it are the engine's own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{parse_form, token_value};

/// Everything the fake knows; take it with [`HttpTokenFake::lock`].
pub struct State {
    /// Lifetime of issued tokens, in seconds.
    pub expires_in: u64,
    /// Tokens issued per `account` query value.
    pub issued: HashMap<String, usize>,
    /// The latest token issued per account.
    pub latest: HashMap<String, String>,
    /// Answer `expires_at` instead of `expires_in`, from a clock that is off.
    pub wrong_clock: Option<WrongClock>,
    serial: u64,
}

/// What a provider with a wrong clock answers, as offsets in seconds from the real now.
#[derive(Clone, Copy, Debug)]
pub struct WrongClock {
    /// `expires_at` in the answer: real now + this (negative: already past here).
    pub expires_at: i64,
    /// The `Date` header: real now + this. Its difference to `expires_at` is the lifetime
    /// the provider means.
    pub date: i64,
}

impl State {
    pub fn total_issued(&self) -> usize {
        self.issued.values().sum()
    }
}

/// The test's handle on a running fake.
#[derive(Clone)]
pub struct HttpTokenFake {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl HttpTokenFake {
    pub async fn start(expires_in: u64) -> Self {
        let state = Arc::new(Mutex::new(State {
            expires_in,
            issued: HashMap::new(),
            latest: HashMap::new(),
            wrong_clock: None,
            serial: 0,
        }));
        let router = Router::new()
            .route("/token", get(token))
            .with_state(state.clone());
        let addr = super::serve(router).await;
        Self { addr, state }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake http state")
    }

    /// An `http` account table that fetches its token from this fake (no client secret).
    pub fn account_toml(&self, name: &str) -> String {
        format!(
            "[[account]]\nname = \"{name}\"\nprovider = \"http\"\nurl = \"http://{}/token\"\n\
             query = {{ account = \"{name}\" }}\n",
            self.addr
        )
    }
}

async fn token(AxState(state): AxState<Arc<Mutex<State>>>, RawQuery(query): RawQuery) -> Response {
    let q = parse_form(query.as_deref().unwrap_or(""));
    let account = q.get("account").cloned().unwrap_or_default();
    let mut st = state.lock().expect("fake http state");
    st.serial += 1;
    let value = token_value("http-", "token", st.serial);
    *st.issued.entry(account.clone()).or_default() += 1;
    st.latest.insert(account, value.clone());
    let Some(clock) = st.wrong_clock else {
        return Json(json!({"access_token": value, "expires_in": st.expires_in})).into_response();
    };
    let now = SystemTime::now();
    let shifted = |offset: i64| {
        let by = Duration::from_secs(offset.unsigned_abs());
        if offset < 0 {
            now - by
        } else {
            now + by
        }
    };
    let expires_at = shifted(clock.expires_at)
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    // A Date set here is sent as is: the server adds its own only when there is none.
    let date = httpdate::fmt_http_date(shifted(clock.date));
    (
        [(header::DATE, date)],
        Json(json!({"access_token": value, "expires_at": expires_at})),
    )
        .into_response()
}
