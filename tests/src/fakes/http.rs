//! A minimal token endpoint for the `http` provider (TokenBoy style), fast enough for scale tests.
//!
//! Owns one endpoint and a counter per account:
//! * `GET /token?account=NAME` → `{"access_token": "<unique>", "expires_in": N}`
//!
//! It does no other work, so timings measured against it are the engine's own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{RawQuery, State as AxState};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{parse_form, token_value};

/// Everything the fake knows; take it with [`HttpTokenFake::lock`].
pub struct State {
    /// Lifetime of issued tokens, in seconds.
    pub expires_in: u64,
    /// Tokens issued per `account` query value.
    pub issued: HashMap<String, usize>,
    /// The latest token issued per account.
    pub latest: HashMap<String, String>,
    serial: u64,
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

async fn token(
    AxState(state): AxState<Arc<Mutex<State>>>,
    RawQuery(query): RawQuery,
) -> Json<Value> {
    let q = parse_form(query.as_deref().unwrap_or(""));
    let account = q.get("account").cloned().unwrap_or_default();
    let mut st = state.lock().expect("fake http state");
    st.serial += 1;
    let value = token_value("http-", "token", st.serial);
    *st.issued.entry(account.clone()).or_default() += 1;
    st.latest.insert(account, value.clone());
    Json(json!({"access_token": value, "expires_in": st.expires_in}))
}
