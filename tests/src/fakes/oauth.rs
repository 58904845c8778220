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

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::{parse_form, token_value};

/// Error envelopes and refresh-token rotation differ between the two providers we model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `{"errors":[{"errorType","message"}],"success":false}`, single-use rotating refresh tokens.
    FitbitLegacy,
    /// RFC 6749 `{"error"}`, refresh token only with access_type=offline, never rotated.
    Google,
}

/// How the token endpoint wants the client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` is required (legacy Fitbit).
    Basic,
    /// `client_id` and `client_secret` are required in the form body (Google).
    Post,
    /// A public client: only `client_id` in the form body, no secret (device flow clients).
    None,
}

#[derive(Clone, Debug)]
pub struct OAuthConfig {
    pub flavor: Flavor,
    pub client_auth: ClientAuth,
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of every access token, in seconds.
    pub expires_in: u64,
    /// Some: redirect_uri must match exactly (legacy Fitbit). None: any
    /// `http://127.0.0.1:PORT/...` loopback redirect is allowed (RFC 8252, Google).
    pub redirect_uri: Option<String>,
    /// Prefixes of issued values, so a leak test can plant recognisable canaries.
    pub access_token_prefix: String,
    pub refresh_token_prefix: String,
    /// `interval` of device authorizations, in seconds.
    pub device_interval: u64,
    /// `expires_in` of device codes, in seconds: polls after it answer `expired_token`.
    pub device_expires_in: u64,
}

impl OAuthConfig {
    /// Legacy Fitbit: Basic auth, exact redirect_uri, rotating refresh tokens, 8 h tokens.
    pub fn fitbit_legacy(redirect_uri: &str) -> Self {
        Self {
            flavor: Flavor::FitbitLegacy,
            client_auth: ClientAuth::Basic,
            client_id: "22942C".into(),
            client_secret: "fitbit-client-secret-0123".into(),
            expires_in: 28_800,
            redirect_uri: Some(redirect_uri.into()),
            access_token_prefix: "fb-at-".into(),
            refresh_token_prefix: "fb-rt-".into(),
            device_interval: 5,
            device_expires_in: 600,
        }
    }

    /// Google OAuth as used for Fitbit data today: secret in the body, any loopback port, 1 h tokens.
    pub fn google() -> Self {
        Self {
            flavor: Flavor::Google,
            client_auth: ClientAuth::Post,
            client_id: "1234-abc.apps.googleusercontent.com".into(),
            client_secret: "GOCSPX-google-client-secret".into(),
            expires_in: 3_600,
            redirect_uri: None,
            access_token_prefix: "ya29.".into(),
            refresh_token_prefix: "1//".into(),
            device_interval: 5,
            device_expires_in: 600,
        }
    }

    /// A public client using the device authorization grant (RFC 8628): no client secret,
    /// RFC 6749 error envelope, refresh tokens not rotated, 1 h tokens. `interval` and the
    /// device code's `expires_in` are in seconds.
    pub fn device(interval: u64, code_expires_in: u64) -> Self {
        Self {
            flavor: Flavor::Google,
            client_auth: ClientAuth::None,
            client_id: "tw-device-client".into(),
            client_secret: String::new(),
            expires_in: 3_600,
            redirect_uri: None,
            access_token_prefix: "dev-at-".into(),
            refresh_token_prefix: "dev-rt-".into(),
            device_interval: interval,
            device_expires_in: code_expires_in,
        }
    }

    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    /// Plants canaries for leak checks: the client secret is `{secret}-client-secret`, refresh
    /// tokens start with `{secret}-rt-` and access tokens with `access_prefix`.
    pub fn canaries(mut self, secret: &str, access_prefix: &str) -> Self {
        self.client_secret = format!("{secret}-client-secret");
        self.refresh_token_prefix = format!("{secret}-rt-");
        self.access_token_prefix = access_prefix.into();
        self
    }
}

/// What the next token requests answer instead of doing their work.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This HTTP status and raw body, with `Retry-After: secs` when given.
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: String,
    },
    /// An OAuth error code in the flavour's envelope (invalid_grant → 400, invalid_client → 401).
    /// Like the real Fitbit, the message quotes the presented refresh token.
    OAuthError(&'static str),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Do the work at once (a refresh grant rotates: the presented refresh token is consumed
    /// and a new one issued, and the request is recorded), then wait this long before
    /// answering: the client's answer is in flight while the provider already moved on.
    DelayAfterIssue(Duration),
    /// Wait this long, then answer as the inner fault does (e.g. a slow 503).
    DelayThen(Duration, Box<Fault>),
    /// Do the work normally but answer `"expires_in": "<n>"` as a string: a 2xx answer a
    /// strict client cannot fully parse, that still carries a new (rotated) refresh token.
    ExpiresInAsString,
    /// Do the work normally (a refresh grant rotates), then answer with these fields set
    /// in the JSON instead (`null` removes one): `{"expires_in": 1e300}`, and such.
    AnswerWith(Value),
    /// Answer this redirect status with `Location: url`, doing no work.
    Redirect(u16, String),
    /// A 200 whose body is this many bytes of JSON-looking filler, sent in chunks.
    HugeBody(usize),
    /// A 200 that never ends: `{` and then one space every so often, doing no work. A read
    /// timeout alone never fires on it.
    Trickle(Duration),
}

impl Fault {
    /// `fault` answered after `delay`.
    pub fn after(delay: Duration, fault: Fault) -> Self {
        Self::DelayThen(delay, Box::new(fault))
    }

    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            retry_after: None,
            body: json!({"error": "temporarily_unavailable"}).to_string(),
        }
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self::Status {
            status: 429,
            retry_after: Some(retry_after),
            body: json!({"errors": [{"errorType": "system", "message": "Too Many Requests"}]})
                .to_string(),
        }
    }

    /// What the legacy Fitbit endpoints answer since they were turned off.
    pub fn gone() -> Self {
        Self::Status {
            status: 410,
            retry_after: None,
            body: json!({"errors": [{"errorType": "system",
                "message": "The Fitbit Web API has been retired."}], "success": false})
            .to_string(),
        }
    }
}

/// One request the token endpoint received, in arrival order.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// When it arrived (before any injected delay): backoff gaps are measured on this.
    pub at: Instant,
    pub grant_type: String,
    pub refresh_token: Option<String>,
    pub status: u16,
    /// The refresh token this request's answer carried, if it issued one.
    pub issued_refresh_token: Option<String>,
}

/// One poll of the token endpoint with the device_code grant.
#[derive(Clone, Debug)]
pub struct DevicePoll {
    pub at: Instant,
    /// The whole form the client posted.
    pub form: HashMap<String, String>,
    /// `authorization_pending`, `slow_down`, `expired_token`, `access_denied`,
    /// `invalid_grant`, or `ok` when tokens were issued.
    pub answer: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Pending,
    Approved,
    Denied,
}

struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    scope: String,
    expires: Instant,
    decision: Decision,
    slow_down: bool,
    used: bool,
}

struct PendingCode {
    challenge: String,
    redirect_uri: String,
    scope: String,
    offline: bool,
}

/// Everything the fake knows. Fields a test reads are public; take it with [`OAuthFake::lock`].
pub struct State {
    pub config: OAuthConfig,
    /// The full query of every authorize request, valid or not.
    pub authorize_queries: Vec<HashMap<String, String>>,
    pub token_requests: Vec<TokenRequest>,
    /// Successful authorization_code exchanges.
    pub code_grants: usize,
    /// Successful refresh_token grants.
    pub refresh_grants: usize,
    pub issued_refresh_tokens: Vec<String>,
    /// Refresh tokens that a successful grant consumed (rotation), in order.
    pub used_refresh_tokens: Vec<String>,
    /// Refresh grants that presented an already consumed refresh token.
    pub reused_refresh_tokens: usize,
    /// Every token value posted to the revocation endpoint.
    pub revoked: Vec<String>,
    /// The form of every device authorization request.
    pub device_requests: Vec<HashMap<String, String>>,
    /// Every device_code grant request, in arrival order.
    pub device_polls: Vec<DevicePoll>,
    /// Successful device_code grants.
    pub device_grants: usize,
    /// Where device authorizations send the user: `http://ADDR/device`.
    pub verification_uri: String,
    /// Every call to `/api/…`, in arrival order.
    pub api_calls: Vec<ApiCall>,
    /// `/api/…` answers 401 whatever the token.
    pub api_refuses_everything: bool,
    /// Where `/api/redirect` sends the client.
    pub redirect_to: String,
    /// Access tokens refused before their time ([`OAuthFake::kill_access_token`]).
    killed_access: HashSet<String>,
    devices: Vec<DeviceAuthorization>,
    faults: VecDeque<Fault>,
    codes: HashMap<String, PendingCode>,
    live_refresh: HashSet<String>,
    current_access: Option<(String, Instant)>,
    /// When each access token issued expires (by this process's monotonic clock).
    access_expiry: HashMap<String, Instant>,
    scope: String,
    serial: u64,
    /// Set while one answer is to carry `expires_in` as a string ([`Fault::ExpiresInAsString`]).
    expires_in_as_string: bool,
    /// Fields that one answer carries instead ([`Fault::AnswerWith`]).
    answer_patch: Option<Value>,
}

impl State {
    pub fn current_access_token(&self) -> Option<String> {
        self.current_access.as_ref().map(|(t, _)| t.clone())
    }

    pub fn latest_refresh_token(&self) -> Option<String> {
        self.issued_refresh_tokens.last().cloned()
    }

    pub fn is_live_refresh_token(&self, token: &str) -> bool {
        self.live_refresh.contains(token)
    }

    /// True when `token` is the current access token and has neither expired nor been revoked.
    pub fn accepts_access_token(&self, token: &str) -> bool {
        matches!(&self.current_access, Some((t, exp)) if t == token && Instant::now() < *exp)
            && !self.killed_access.contains(token)
    }

    /// How long an access token this fake issued has left, by the real clock: `None` if it
    /// never issued it, zero once it has expired (whatever the clock of the process asking).
    pub fn access_token_left(&self, token: &str) -> Option<Duration> {
        self.access_expiry
            .get(token)
            .map(|exp| exp.saturating_duration_since(Instant::now()))
    }

    /// When an access token this fake issued expires (this process's monotonic clock).
    pub fn access_token_expiry(&self, token: &str) -> Option<Instant> {
        self.access_expiry.get(token).copied()
    }

    pub fn refresh_requests(&self) -> Vec<TokenRequest> {
        self.token_requests
            .iter()
            .filter(|r| r.grant_type == "refresh_token")
            .cloned()
            .collect()
    }

    fn next(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Issues an access token (and a refresh token when asked) and answers like the provider.
    fn issue(&mut self, with_refresh: bool) -> Value {
        let n = self.next();
        let access = token_value(&self.config.access_token_prefix, "access", n);
        let expires = Instant::now() + Duration::from_secs(self.config.expires_in);
        self.current_access = Some((access.clone(), expires));
        self.access_expiry.insert(access.clone(), expires);
        let expires_in = if self.expires_in_as_string {
            json!(self.config.expires_in.to_string())
        } else {
            json!(self.config.expires_in)
        };
        let mut answer = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": self.scope,
        });
        if self.config.flavor == Flavor::FitbitLegacy {
            answer["user_id"] = json!("ABC123");
        }
        if with_refresh {
            let refresh = token_value(&self.config.refresh_token_prefix, "refresh", n);
            self.live_refresh.insert(refresh.clone());
            self.issued_refresh_tokens.push(refresh.clone());
            answer["refresh_token"] = json!(refresh);
        }
        if let Some(Value::Object(patch)) = &self.answer_patch {
            let fields = answer.as_object_mut().expect("an object");
            for (key, value) in patch {
                if value.is_null() {
                    fields.remove(key);
                } else {
                    fields.insert(key.clone(), value.clone());
                }
            }
        }
        answer
    }

    fn error(&self, code: &str, presented: Option<&str>) -> Response {
        let status = match code {
            "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = match self.config.flavor {
            // The real Fitbit quotes the refresh token back; a client must never print bodies.
            Flavor::FitbitLegacy => json!({
                "errors": [{"errorType": code, "message": format!(
                    "Refresh token invalid: {}. Visit https://dev.fitbit.com/docs/oauth2 for more information on the Fitbit Web API authorization process.",
                    presented.unwrap_or(""))}],
                "success": false,
            }),
            Flavor::Google => {
                json!({"error": code, "error_description": "Token has been expired or revoked."})
            }
        };
        (status, Json(body)).into_response()
    }

    fn client_authenticated(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
        let (id, secret) = (&self.config.client_id, &self.config.client_secret);
        match self.config.client_auth {
            ClientAuth::Basic => {
                basic_credentials(headers).is_some_and(|(i, s)| &i == id && &s == secret)
            }
            ClientAuth::Post => {
                form.get("client_id") == Some(id) && form.get("client_secret") == Some(secret)
            }
            ClientAuth::None => form.get("client_id") == Some(id),
        }
    }

    /// An RFC 6749 / RFC 8628 error answer: HTTP 400 `{"error", "error_description"}`.
    fn standard_error(code: &str, description: &str) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    }

    fn device_grant(&mut self, form: &HashMap<String, String>) -> Response {
        let presented = form.get("device_code").cloned().unwrap_or_default();
        let now = Instant::now();
        let answer = match self.devices.iter_mut().find(|d| d.device_code == presented) {
            None => "invalid_grant",
            Some(d) if d.used => "invalid_grant",
            Some(d) if now >= d.expires => "expired_token",
            Some(d) if d.decision == Decision::Denied => "access_denied",
            Some(d) if d.slow_down => {
                d.slow_down = false;
                "slow_down"
            }
            Some(d) if d.decision == Decision::Pending => "authorization_pending",
            Some(d) => {
                d.used = true;
                "ok"
            }
        };
        let response = if answer == "ok" {
            let scope = self
                .devices
                .iter()
                .find(|d| d.device_code == presented)
                .map(|d| d.scope.clone())
                .unwrap_or_default();
            self.scope = scope;
            self.device_grants += 1;
            Json(self.issue(true)).into_response()
        } else {
            Self::standard_error(answer, "device authorization")
        };
        self.device_polls.push(DevicePoll {
            at: now,
            form: form.clone(),
            answer: answer.into(),
        });
        response
    }

    fn grant(&mut self, headers: &HeaderMap, form: &HashMap<String, String>) -> Response {
        if !self.client_authenticated(headers, form) {
            return self.error("invalid_client", None);
        }
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.code_grant(form),
            Some("refresh_token") => self.refresh_grant(form),
            Some(DEVICE_GRANT) => self.device_grant(form),
            _ => self.error("unsupported_grant_type", None),
        }
    }

    fn code_grant(&mut self, form: &HashMap<String, String>) -> Response {
        let code = form.get("code").cloned().unwrap_or_default();
        // Codes are single use, whatever the outcome.
        let Some(pending) = self.codes.remove(&code) else {
            return self.error("invalid_grant", None);
        };
        let verifier_ok = form
            .get("code_verifier")
            .is_some_and(|v| s256(v) == pending.challenge);
        if !verifier_ok || form.get("redirect_uri") != Some(&pending.redirect_uri) {
            return self.error("invalid_grant", None);
        }
        self.code_grants += 1;
        self.scope = pending.scope;
        let with_refresh = self.config.flavor == Flavor::FitbitLegacy || pending.offline;
        Json(self.issue(with_refresh)).into_response()
    }

    fn refresh_grant(&mut self, form: &HashMap<String, String>) -> Response {
        let presented = form.get("refresh_token").cloned().unwrap_or_default();
        if !self.live_refresh.contains(&presented) {
            if self.used_refresh_tokens.contains(&presented) {
                self.reused_refresh_tokens += 1;
            }
            return self.error("invalid_grant", Some(&presented));
        }
        self.refresh_grants += 1;
        let rotate = self.config.flavor == Flavor::FitbitLegacy;
        if rotate {
            self.live_refresh.remove(&presented);
            self.used_refresh_tokens.push(presented);
        }
        Json(self.issue(rotate)).into_response()
    }
}

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

async fn authorize(AxState(state): AxState<Shared>, RawQuery(query): RawQuery) -> Response {
    let q = parse_form(query.as_deref().unwrap_or(""));
    let mut st = state.lock().expect("fake oauth state");
    st.authorize_queries.push(q.clone());
    let param = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let redirect_uri = param("redirect_uri");
    let problem = if param("client_id") != st.config.client_id {
        Some("unknown client_id")
    } else if param("response_type") != "code" {
        Some("response_type must be code")
    } else if !redirect_allowed(st.config.redirect_uri.as_deref(), redirect_uri) {
        Some("redirect_uri mismatch")
    } else if param("code_challenge_method") != "S256" || param("code_challenge").len() != 43 {
        Some("PKCE S256 code_challenge required")
    } else {
        None
    };
    if let Some(problem) = problem {
        return (StatusCode::BAD_REQUEST, problem).into_response();
    }
    let n = st.next();
    let code = token_value("", "code", n);
    st.codes.insert(
        code.clone(),
        PendingCode {
            challenge: param("code_challenge").into(),
            redirect_uri: redirect_uri.into(),
            scope: param("scope").into(),
            offline: param("access_type") == "offline",
        },
    );
    let mut location = url::Url::parse(redirect_uri).expect("checked above");
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = q.get("state") {
        location.query_pairs_mut().append_pair("state", s);
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

async fn device_authorization(AxState(state): AxState<Shared>, body: String) -> Response {
    let form = parse_form(&body);
    let mut st = state.lock().expect("fake oauth state");
    st.device_requests.push(form.clone());
    if form.get("client_id") != Some(&st.config.client_id) {
        return State::standard_error("invalid_client", "unknown client_id");
    }
    let n = st.next();
    let device_code = token_value("", "device-code", n);
    // RFC 8628 6.1: short, case-insensitive, no ambiguous characters.
    let letters = b"BCDFGHJKLMNPQRSTVWXZ";
    let user_code: String = (0..8)
        .map(|i| {
            let c = letters[rand::random_range(0..letters.len())] as char;
            if i == 4 {
                format!("-{c}")
            } else {
                c.to_string()
            }
        })
        .collect();
    let (interval, expires_in) = (st.config.device_interval, st.config.device_expires_in);
    st.devices.push(DeviceAuthorization {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        scope: form.get("scope").cloned().unwrap_or_default(),
        expires: Instant::now() + Duration::from_secs(expires_in),
        decision: Decision::Pending,
        slow_down: false,
        used: false,
    });
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": st.verification_uri,
        "expires_in": expires_in,
        "interval": interval,
    }))
    .into_response()
}

fn redirect_allowed(registered: Option<&str>, asked: &str) -> bool {
    match registered {
        Some(exact) => exact == asked,
        None => url::Url::parse(asked).is_ok_and(|u| {
            u.scheme() == "http" && u.host_str() == Some("127.0.0.1") && u.port().is_some()
        }),
    }
}

async fn token(AxState(state): AxState<Shared>, headers: HeaderMap, body: String) -> Response {
    let at = Instant::now();
    let form = parse_form(&body);
    let mut fault = state.lock().expect("fake oauth state").faults.pop_front();
    // Delays before the work, possibly nested.
    loop {
        match fault {
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                fault = None;
            }
            Some(Fault::DelayThen(d, inner)) => {
                tokio::time::sleep(d).await;
                fault = Some(*inner);
            }
            _ => break,
        }
    }
    let (response, answer_after) = {
        let mut st = state.lock().expect("fake oauth state");
        let issued_before = st.issued_refresh_tokens.len();
        let (response, answer_after) = match fault {
            Some(Fault::Status {
                status,
                retry_after,
                body,
            }) => {
                let mut r = (
                    StatusCode::from_u16(status).expect("fault status"),
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
                if let Some(secs) = retry_after {
                    r.headers_mut().insert(
                        header::RETRY_AFTER,
                        secs.to_string().parse().expect("header"),
                    );
                }
                (r, None)
            }
            Some(Fault::OAuthError(code)) => (
                st.error(code, form.get("refresh_token").map(String::as_str)),
                None,
            ),
            Some(Fault::ExpiresInAsString) => {
                st.expires_in_as_string = true;
                let r = st.grant(&headers, &form);
                st.expires_in_as_string = false;
                (r, None)
            }
            Some(Fault::AnswerWith(patch)) => {
                st.answer_patch = Some(patch);
                let r = st.grant(&headers, &form);
                st.answer_patch = None;
                (r, None)
            }
            Some(Fault::Redirect(status, url)) => (
                (
                    StatusCode::from_u16(status).expect("redirect status"),
                    [(header::LOCATION, url)],
                )
                    .into_response(),
                None,
            ),
            Some(Fault::HugeBody(size)) => {
                let chunk = bytes_of_filler(64 * 1024);
                let chunks = size.div_ceil(chunk.len());
                let stream = futures_stream(chunk, chunks);
                (
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        axum::body::Body::from_stream(stream),
                    )
                        .into_response(),
                    None,
                )
            }
            Some(Fault::Trickle(every)) => {
                let first = futures_util::stream::once(async {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{"))
                });
                let rest = futures_util::stream::unfold((), move |()| async move {
                    tokio::time::sleep(every).await;
                    Some((Ok(bytes_of_filler(1)), ()))
                });
                (
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        axum::body::Body::from_stream(futures_util::StreamExt::chain(first, rest)),
                    )
                        .into_response(),
                    None,
                )
            }
            Some(Fault::DelayAfterIssue(d)) => (st.grant(&headers, &form), Some(d)),
            _ => (st.grant(&headers, &form), None),
        };
        let issued_refresh_token = st.issued_refresh_tokens[issued_before..].last().cloned();
        st.token_requests.push(TokenRequest {
            at,
            grant_type: form.get("grant_type").cloned().unwrap_or_default(),
            refresh_token: form.get("refresh_token").cloned(),
            status: response.status().as_u16(),
            issued_refresh_token,
        });
        (response, answer_after)
    };
    if let Some(d) = answer_after {
        tokio::time::sleep(d).await;
    }
    response
}

async fn revoke(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    // Google also takes `token` in the query string.
    let mut form = parse_form(query.as_deref().unwrap_or(""));
    form.extend(parse_form(&body));
    let mut st = state.lock().expect("fake oauth state");
    if st.config.client_auth == ClientAuth::Basic && !st.client_authenticated(&headers, &form) {
        return st.error("invalid_client", None);
    }
    let Some(token) = form.get("token").cloned() else {
        return (StatusCode::BAD_REQUEST, "token required").into_response();
    };
    let known =
        st.live_refresh.contains(&token) || st.current_access_token().as_ref() == Some(&token);
    if known {
        st.live_refresh.clear();
        st.current_access = None;
    }
    st.revoked.push(token);
    StatusCode::OK.into_response()
}

async fn profile(AxState(state): AxState<Shared>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if state
        .lock()
        .expect("fake oauth state")
        .accepts_access_token(bearer)
    {
        Json(json!({"user": {"encodedId": "ABC123", "displayName": "Fake User"}})).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": [{"errorType": "invalid_token", "message": "Access token invalid"}], "success": false})),
        )
            .into_response()
    }
}

/// One call to the fake's API.
#[derive(Clone, Debug)]
pub struct ApiCall {
    pub method: String,
    /// Path and query as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub bearer: Option<String>,
    pub body_len: usize,
    pub answered: u16,
}

async fn api(
    AxState(state): AxState<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut st = state.lock().expect("fake oauth state");
    let accepted = !st.api_refuses_everything
        && bearer
            .as_deref()
            .is_some_and(|b| st.accepts_access_token(b));
    let query: HashMap<String, String> = parse_form(uri.query().unwrap_or(""));
    let answer = if !accepted {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": [{"errorType": "expired_token", "message": "Access token expired"}], "success": false})),
        )
            .into_response()
    } else if uri.path() == "/api/redirect" {
        (
            StatusCode::FOUND,
            [(header::LOCATION, st.redirect_to.clone())],
        )
            .into_response()
    } else if uri.path() == "/api/cookie" {
        (
            [(
                header::SET_COOKIE,
                "provider_session=fake-session; HttpOnly",
            )],
            Json(json!({ "path": uri.path() })),
        )
            .into_response()
    } else if uri.path() == "/api/big" {
        let n: usize = query.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0);
        vec![b'x'; n].into_response()
    } else {
        Json(json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": query,
            "body_len": body.len(),
            "body_sha256": format!("{:x}", sha2::Sha256::digest(&body)),
        }))
        .into_response()
    };
    st.api_calls.push(ApiCall {
        method: method.to_string(),
        target: uri.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        bearer,
        body_len: body.len(),
        answered: answer.status().as_u16(),
    });
    answer
}

/// `Authorization: Basic` → (client_id, client_secret), each form-urlencoded per RFC 6749 2.3.1.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// PKCE S256: BASE64URL-NOPAD(SHA256(verifier)).
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn bytes_of_filler(n: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b' '; n])
}

/// `count` copies of `chunk`, as a body stream (no Content-Length: the client learns the
/// size only by reading).
fn futures_stream(
    chunk: axum::body::Bytes,
    count: usize,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::iter(std::iter::repeat_n(chunk, count).map(Ok))
}
