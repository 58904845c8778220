//! A WeChat-like server: `access_token` by client credentials, `stable_token`, `jsapi_ticket`.
//!
//! Owns these endpoints and the token series behind them:
//! * `GET  /cgi-bin/token?grant_type=client_credential&appid&secret` → `{"access_token","expires_in"}`
//! * `POST /cgi-bin/stable_token` with a JSON body; a separate series that other callers do not
//!   invalidate: it answers the current stable token until `overlap` remains (like WeChat's
//!   5 minutes), or a new one with `force_refresh`
//! * `GET  /cgi-bin/ticket/getticket?type=jsapi&access_token` → `{"errcode":0,"ticket","expires_in"}`
//! * `GET  /cgi-bin/check?access_token` → errcode 0 or 40001
//!
//! Failures are HTTP 200 with `{"errcode","errmsg"}`, as on the real platform. Issuing a token
//! leaves the previous one alive for `overlap`; older ones die at once. Every getticket call is
//! recorded with whether its token was alive, so a test can assert "never with a dead token".

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{parse_form, token_value};

#[derive(Clone, Debug)]
pub struct WeChatConfig {
    pub appid: String,
    pub secret: String,
    /// Lifetime of access tokens, in seconds (7200 on the real platform).
    pub expires_in: u64,
    /// How long the previous token stays valid after a new one is issued (5 min for real).
    pub overlap: Duration,
    pub ticket_expires_in: u64,
    /// Prefix of issued tokens and tickets, for canaries.
    pub token_prefix: String,
}

impl Default for WeChatConfig {
    fn default() -> Self {
        Self {
            appid: "wx1234567890".into(),
            secret: "wechat-appsecret-0123456789abcdef".into(),
            expires_in: 7200,
            overlap: Duration::from_secs(300),
            ticket_expires_in: 7200,
            token_prefix: "wx-".into(),
        }
    }
}

/// What the next answers of an endpoint are instead of doing their work.
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 200 `{"errcode": code, "errmsg": msg}`: -1 busy, 45009 quota, 40164 IP not allowed...
    Errcode(i64, &'static str),
    /// This HTTP status with a short body.
    Http(u16),
}

impl Fault {
    pub fn busy() -> Self {
        Self::Errcode(-1, "system error")
    }
}

/// An issued access token, stable token or ticket.
#[derive(Clone, Debug)]
pub struct Issued {
    pub value: String,
    pub issued_at: Instant,
    pub dies_at: Instant,
}

impl Issued {
    pub fn alive(&self) -> bool {
        Instant::now() < self.dies_at
    }
}

/// One request to a token endpoint and its answer (errcode 0 = a token was issued).
#[derive(Clone, Debug)]
pub struct TokenCall {
    pub at: Instant,
    pub endpoint: &'static str,
    pub errcode: i64,
    pub http_status: u16,
}

#[derive(Clone, Debug)]
pub struct TicketCall {
    pub at: Instant,
    pub access_token: String,
    pub token_alive: bool,
}

/// Everything the fake knows; take it with [`WeChatFake::lock`].
pub struct State {
    pub config: WeChatConfig,
    pub token_calls: Vec<TokenCall>,
    /// `cgi-bin/token` series, oldest first.
    pub tokens: Vec<Issued>,
    pub stable_tokens: Vec<Issued>,
    /// JSON bodies posted to `stable_token`.
    pub stable_bodies: Vec<Value>,
    pub ticket_calls: Vec<TicketCall>,
    pub tickets: Vec<Issued>,
    /// The access_token of every `cgi-bin/check` call, and whether it was alive.
    pub check_calls: Vec<(String, bool)>,
    token_faults: VecDeque<Fault>,
    ticket_faults: VecDeque<Fault>,
    serial: u64,
}

impl State {
    /// True when `token` is an access token (either series) that has not died.
    pub fn token_alive(&self, token: &str) -> bool {
        self.tokens
            .iter()
            .chain(&self.stable_tokens)
            .any(|t| t.value == token && t.alive())
    }

    /// True when `ticket` was issued here and has not expired.
    pub fn ticket_valid(&self, ticket: &str) -> bool {
        self.tickets.iter().any(|t| t.value == ticket && t.alive())
    }

    pub fn tokens_issued(&self) -> usize {
        self.tokens.len() + self.stable_tokens.len()
    }

    fn issue(&mut self, stable: bool) -> Value {
        self.serial += 1;
        let now = Instant::now();
        let (expires_in, overlap) = (self.config.expires_in, self.config.overlap);
        let value = token_value(&self.config.token_prefix, "token", self.serial);
        let series = if stable {
            &mut self.stable_tokens
        } else {
            &mut self.tokens
        };
        let count = series.len();
        for (i, old) in series.iter_mut().enumerate() {
            let dies = if i + 1 == count { now + overlap } else { now };
            old.dies_at = old.dies_at.min(dies);
        }
        series.push(Issued {
            value: value.clone(),
            issued_at: now,
            dies_at: now + Duration::from_secs(expires_in),
        });
        json!({"access_token": value, "expires_in": expires_in})
    }

    /// How a token endpoint refuses a request before issuing anything, in this order: the
    /// next injected fault, a grant_type other than `client_credential`, wrong credentials.
    /// `(errcode, answer)`; `None` when the request is to be served.
    fn token_refusal(
        &mut self,
        grant_type: Option<&str>,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Option<(i64, Response)> {
        if let Some(fault) = self.token_faults.pop_front() {
            Some(fault_response(fault))
        } else if grant_type != Some("client_credential") {
            Some((
                40002,
                Json(errcode(40002, "invalid grant_type")).into_response(),
            ))
        } else {
            self.credentials_error(appid, secret).map(|err| {
                (
                    err["errcode"].as_i64().unwrap_or(-2),
                    Json(err).into_response(),
                )
            })
        }
    }

    /// Records a call of the token endpoint `endpoint` with its `(errcode, answer)`; returns
    /// the answer.
    fn record_token_call(
        &mut self,
        endpoint: &'static str,
        (code, response): (i64, Response),
    ) -> Response {
        self.token_calls.push(TokenCall {
            at: Instant::now(),
            endpoint,
            errcode: code,
            http_status: response.status().as_u16(),
        });
        response
    }

    fn credentials_error(&self, appid: Option<&str>, secret: Option<&str>) -> Option<Value> {
        if appid != Some(self.config.appid.as_str()) {
            Some(errcode(40013, "invalid appid"))
        } else if secret != Some(self.config.secret.as_str()) {
            Some(errcode(40125, "invalid appsecret"))
        } else {
            None
        }
    }
}

fn errcode(code: i64, msg: &str) -> Value {
    json!({"errcode": code, "errmsg": format!("{msg} rid: 6650a1b2-0c3d4e5f-1a2b3c4d")})
}

fn fault_response(fault: Fault) -> (i64, Response) {
    match fault {
        Fault::Errcode(code, msg) => (code, Json(errcode(code, msg)).into_response()),
        Fault::Http(status) => (
            -1,
            (
                StatusCode::from_u16(status).expect("fault status"),
                "upstream busy",
            )
                .into_response(),
        ),
    }
}

/// The test's handle on a running fake.
#[derive(Clone)]
pub struct WeChatFake {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

type Shared = Arc<Mutex<State>>;

impl WeChatFake {
    pub async fn start(config: WeChatConfig) -> Self {
        let state = Arc::new(Mutex::new(State {
            config,
            token_calls: Vec::new(),
            tokens: Vec::new(),
            stable_tokens: Vec::new(),
            stable_bodies: Vec::new(),
            ticket_calls: Vec::new(),
            tickets: Vec::new(),
            check_calls: Vec::new(),
            token_faults: VecDeque::new(),
            ticket_faults: VecDeque::new(),
            serial: 0,
        }));
        let router = Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/stable_token", post(stable_token))
            .route("/cgi-bin/ticket/getticket", get(getticket))
            .route("/cgi-bin/check", get(check))
            .with_state(state.clone());
        let addr = super::serve(router).await;
        Self { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake wechat state")
    }

    /// The next `n` answers of the token endpoints (token and stable_token) are `fault`.
    pub fn fail_next_tokens(&self, n: usize, fault: Fault) {
        self.lock()
            .token_faults
            .extend(std::iter::repeat_n(fault, n));
    }

    /// Every access token issued so far dies now, as when another server fetched a new one
    /// more than five minutes ago; the next fetch gives a live one.
    pub fn kill_tokens(&self) {
        let now = Instant::now();
        let mut guard = self.lock();
        let st = &mut *guard;
        for t in st.tokens.iter_mut().chain(st.stable_tokens.iter_mut()) {
            t.dies_at = t.dies_at.min(now);
        }
    }

    /// The next `n` getticket answers are `fault`.
    pub fn fail_next_tickets(&self, n: usize, fault: Fault) {
        self.lock()
            .ticket_faults
            .extend(std::iter::repeat_n(fault, n));
    }

    /// A `wechat` account table for this fake; `extra` is appended verbatim.
    pub fn account_toml(&self, name: &str, extra: &str) -> String {
        let appid = self.lock().config.appid.clone();
        format!(
            "[[account]]\nname = \"{name}\"\nprovider = \"wechat\"\nclient_id = \"{appid}\"\n\
             base_url = \"{}\"\n{extra}\n",
            self.base_url()
        )
    }
}

async fn token(AxState(state): AxState<Shared>, RawQuery(query): RawQuery) -> Response {
    let q = parse_form(query.as_deref().unwrap_or(""));
    let mut st = state.lock().expect("fake wechat state");
    let field = |k: &str| q.get(k).map(String::as_str);
    let answer = st
        .token_refusal(field("grant_type"), field("appid"), field("secret"))
        .unwrap_or_else(|| (0, Json(st.issue(false)).into_response()));
    st.record_token_call("token", answer)
}

async fn stable_token(AxState(state): AxState<Shared>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut st = state.lock().expect("fake wechat state");
    st.stable_bodies.push(body.clone());
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    let answer = match st.token_refusal(field("grant_type"), field("appid"), field("secret")) {
        Some(refused) => refused,
        None => {
            let force = body
                .get("force_refresh")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let overlap = st.config.overlap;
            let current = st.stable_tokens.last().cloned();
            match current {
                // Normal mode answers the current token with what remains of its life.
                Some(t) if !force && t.dies_at > Instant::now() + overlap => {
                    let left = t
                        .dies_at
                        .saturating_duration_since(Instant::now())
                        .as_secs();
                    (
                        0,
                        Json(json!({"access_token": t.value, "expires_in": left})).into_response(),
                    )
                }
                _ => (0, Json(st.issue(true)).into_response()),
            }
        }
    };
    st.record_token_call("stable_token", answer)
}

async fn getticket(AxState(state): AxState<Shared>, RawQuery(query): RawQuery) -> Response {
    let q: HashMap<String, String> = parse_form(query.as_deref().unwrap_or(""));
    let mut st = state.lock().expect("fake wechat state");
    let access_token = q.get("access_token").cloned().unwrap_or_default();
    let token_alive = st.token_alive(&access_token);
    st.ticket_calls.push(TicketCall {
        at: Instant::now(),
        access_token,
        token_alive,
    });
    if let Some(fault) = st.ticket_faults.pop_front() {
        return fault_response(fault).1;
    }
    if q.get("type").map(String::as_str) != Some("jsapi") {
        return Json(errcode(40097, "invalid args")).into_response();
    }
    if !token_alive {
        return Json(errcode(
            40001,
            "invalid credential, access_token is invalid or not latest",
        ))
        .into_response();
    }
    st.serial += 1;
    let expires_in = st.config.ticket_expires_in;
    let ticket = token_value(&st.config.token_prefix, "ticket", st.serial);
    st.tickets.push(Issued {
        value: ticket.clone(),
        issued_at: Instant::now(),
        dies_at: Instant::now() + Duration::from_secs(expires_in),
    });
    Json(json!({"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": expires_in}))
        .into_response()
}

async fn check(AxState(state): AxState<Shared>, RawQuery(query): RawQuery) -> Json<Value> {
    let q = parse_form(query.as_deref().unwrap_or(""));
    let token = q.get("access_token").map(String::as_str).unwrap_or("");
    let mut st = state.lock().expect("fake wechat state");
    let alive = st.token_alive(token);
    st.check_calls.push((token.to_owned(), alive));
    if alive {
        Json(json!({"errcode": 0, "errmsg": "ok"}))
    } else {
        Json(errcode(
            40001,
            "invalid credential, access_token is invalid or not latest",
        ))
    }
}
