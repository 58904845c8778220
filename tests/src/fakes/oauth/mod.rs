//! A Fitbit-legacy-like or Google-like OAuth 2.0 server, one flavour per instance.
//!
//! Owns four endpoints and the grant state behind them:
//! * `GET  /oauth2/authorize`      checks client_id, response_type, redirect_uri and PKCE S256,
//!   records the whole query, auto-approves: 302 to `redirect_uri?code=..&state=..`
//! * `POST /oauth2/token`          `authorization_code` (verifier and exact redirect_uri checked)
//!   and `refresh_token` grants, client auth by HTTP Basic or in the body
//! * `POST /oauth2/revoke`         RFC 7009; revoking any token of the grant kills the whole grant
//! * `GET  /1/user/-/profile.json` 200 only for the current, unexpired, unrevoked access token
//! * `ANY  /api/{path}`            the account's API for the proxy: 401 unless the bearer is the
//!   current access token (and [`State::api_refuses_everything`] is off); else 200 echoing the
//!   method, path, query and body size. `/api/redirect` answers 302 to
//!   [`State::redirect_to`]; `/api/big?bytes=N` answers N bytes; `/api/cookie` sets a cookie.
//!   Every call is recorded in [`State::api_calls`] with every header it carried.
//! * `POST /oauth2/device`         RFC 8628 device authorization: issues a device code and a user
//!   code; the token endpoint then answers the device_code grant with `authorization_pending`
//!   until the test approves ([`OAuthFake::approve_device`]) or denies it, `slow_down` once when
//!   asked ([`OAuthFake::slow_down_once`]), `expired_token` after the code's `expires_in`.
//!   Every poll is recorded with its arrival time in [`State::device_polls`].
//!
//! Refresh tokens are single use when the flavour rotates them (legacy Fitbit): presenting a
//! consumed one answers invalid_grant and is counted in [`State::reused_refresh_tokens`], which a
//! test asserts stays 0. Google does not rotate: its refresh answer has no refresh_token and the
//! old one stays valid. Faults queued with [`OAuthFake::fail_next`] answer the next token requests:
//! an error, a delay before the work, or [`Fault::DelayAfterIssue`] (rotate at once, answer late)
//! for tests of what happens while an answer is in flight.
//!
//! The files: `config` (what kind of provider, [`OAuthConfig`], and the [`Fault`]s it can be
//! told to answer), `state` (the grants behind the endpoints, [`State`]), `endpoints` (the
//! authorize, device, revoke, profile and API handlers) and `token` (the token endpoint, where
//! faults are answered). This file is the test's handle, [`OAuthFake`].

mod config;
mod endpoints;
mod state;
mod token;

pub use config::{ClientAuth, Fault, Flavor, OAuthConfig};
pub use state::{s256, ApiCall, DevicePoll, State, TokenRequest};

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::{get, post};
use axum::Router;

use endpoints::{api, authorize, device_authorization, profile, revoke};
use state::Decision;
use token::token;

/// The RFC 8628 grant type of token requests that poll with a device code.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The test's handle on a running fake.
#[derive(Clone)]
pub struct OAuthFake {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

type Shared = Arc<Mutex<State>>;

impl OAuthFake {
    pub async fn start(config: OAuthConfig) -> Self {
        let state = Arc::new(Mutex::new(State {
            config,
            authorize_queries: Vec::new(),
            token_requests: Vec::new(),
            code_grants: 0,
            refresh_grants: 0,
            issued_refresh_tokens: Vec::new(),
            used_refresh_tokens: Vec::new(),
            reused_refresh_tokens: 0,
            revoked: Vec::new(),
            device_requests: Vec::new(),
            device_polls: Vec::new(),
            device_grants: 0,
            verification_uri: String::new(),
            api_calls: Vec::new(),
            api_refuses_everything: false,
            redirect_to: String::new(),
            killed_access: HashSet::new(),
            devices: Vec::new(),
            faults: VecDeque::new(),
            codes: HashMap::new(),
            live_refresh: HashSet::new(),
            current_access: None,
            access_expiry: HashMap::new(),
            scope: String::new(),
            serial: 0,
            expires_in_as_string: false,
            answer_patch: None,
        }));
        let router = Router::new()
            .route("/oauth2/authorize", get(authorize))
            .route("/oauth2/token", post(token))
            .route("/oauth2/revoke", post(revoke))
            .route("/1/user/-/profile.json", get(profile))
            .route("/oauth2/device", post(device_authorization))
            .route("/api/{*path}", axum::routing::any(api))
            .with_state(state.clone());
        let addr = super::serve(router).await;
        state.lock().expect("fake oauth state").verification_uri = format!("http://{addr}/device");
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Whether an access token is one this fake issued and still honours, for a server that
    /// trusts this provider's tokens (the git server, the kube API).
    pub fn token_check(&self) -> impl Fn(&str) -> bool + Send + Sync + 'static {
        let state = self.state.clone();
        move |token| {
            state
                .lock()
                .expect("fake oauth state")
                .accepts_access_token(token)
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake oauth state")
    }

    /// The current access token is refused from now on, as a provider does with a token it
    /// revoked on its side (a password change, a security event); a refresh gives a good one.
    pub fn kill_access_token(&self) {
        let mut st = self.lock();
        if let Some(token) = st.current_access_token() {
            st.killed_access.insert(token);
        }
    }

    /// The next `n` token requests answer `fault` (a delay still answers normally after it).
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut st = self.lock();
        st.faults.extend(std::iter::repeat_n(fault, n));
    }

    /// Drops the faults still queued.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The user approves the device authorization showing `user_code`.
    pub fn approve_device(&self, user_code: &str) {
        self.decide_device(user_code, Decision::Approved);
    }

    /// The user denies the device authorization showing `user_code`: polls get `access_denied`.
    pub fn deny_device(&self, user_code: &str) {
        self.decide_device(user_code, Decision::Denied);
    }

    /// The next poll for `user_code`'s device code answers `slow_down` (once).
    pub fn slow_down_once(&self, user_code: &str) {
        let mut st = self.lock();
        let device = st
            .devices
            .iter_mut()
            .find(|d| d.user_code == user_code)
            .unwrap_or_else(|| panic!("no device authorization with user code {user_code:?}"));
        device.slow_down = true;
    }

    fn decide_device(&self, user_code: &str, decision: Decision) {
        let mut st = self.lock();
        let known: Vec<String> = st.devices.iter().map(|d| d.user_code.clone()).collect();
        let device = st
            .devices
            .iter_mut()
            .find(|d| d.user_code == user_code)
            .unwrap_or_else(|| {
                panic!("no device authorization with user code {user_code:?} (issued: {known:?})")
            });
        device.decision = decision;
    }

    /// An `[[account]]` table for the generic `oauth2` preset with the device_code grant and
    /// no client authentication, pointing at this fake.
    pub fn device_account_toml(&self, name: &str, scopes: &[&str]) -> String {
        let client_id = self.lock().config.client_id.clone();
        let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "[[account]]\nname = \"{name}\"\nprovider = \"oauth2\"\ngrant = \"device_code\"\n\
             client_id = \"{client_id}\"\ndevice_auth_url = \"{}\"\ntoken_url = \"{}\"\n\
             client_auth = \"none\"\nscopes = [{}]\n",
            self.url("/oauth2/device"),
            self.url("/oauth2/token"),
            scopes.join(", "),
        )
    }

    /// Tokens as if the user had consented, for tests that start from a connected account.
    /// Counts as no grant. Returns `(access_token, refresh_token)`.
    pub fn issue_grant(&self) -> (String, String) {
        let mut st = self.lock();
        let answer = st.issue(true);
        let field = |k: &str| answer[k].as_str().expect("issued token").to_string();
        (field("access_token"), field("refresh_token"))
    }

    /// An `[[account]]` table pointing the preset's endpoints at this fake. `extra` is appended
    /// verbatim (redirect_uri, scopes, refresh_before, ...).
    pub fn account_toml(&self, name: &str, preset: &str, extra: &str) -> String {
        let client_id = self.lock().config.client_id.clone();
        format!(
            "[[account]]\nname = \"{name}\"\nprovider = \"{preset}\"\nclient_id = \"{client_id}\"\n\
             auth_url = \"{}\"\ntoken_url = \"{}\"\nrevoke_url = \"{}\"\n{extra}\n",
            self.url("/oauth2/authorize"),
            self.url("/oauth2/token"),
            self.url("/oauth2/revoke"),
        )
    }

    /// Asks the protected resource with `access_token`, as an API client would.
    pub async fn profile_status(&self, access_token: &str) -> u16 {
        reqwest::Client::new()
            .get(self.url("/1/user/-/profile.json"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("profile request to the fake")
            .status()
            .as_u16()
    }
}
