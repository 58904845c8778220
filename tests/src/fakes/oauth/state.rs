//! [`State`], everything the fake knows: the grants it issued and consumed, the device
//! authorizations, and the record of every request a test reads back; the grant logic of the
//! token endpoint works on it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::{ClientAuth, Fault, Flavor, OAuthConfig, DEVICE_GRANT};
use crate::fakes::token_value;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Pending,
    Approved,
    Denied,
}

pub(super) struct DeviceAuthorization {
    pub(super) device_code: String,
    pub(super) user_code: String,
    pub(super) scope: String,
    pub(super) expires: Instant,
    pub(super) decision: Decision,
    pub(super) slow_down: bool,
    pub(super) used: bool,
}

pub(super) struct PendingCode {
    pub(super) challenge: String,
    pub(super) redirect_uri: String,
    pub(super) scope: String,
    pub(super) offline: bool,
}

/// Everything the fake knows. Fields a test reads are public; take it with
/// [`OAuthFake::lock`](super::OAuthFake::lock).
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
    /// Access tokens refused before their time
    /// ([`OAuthFake::kill_access_token`](super::OAuthFake::kill_access_token)).
    pub(super) killed_access: HashSet<String>,
    pub(super) devices: Vec<DeviceAuthorization>,
    pub(super) faults: VecDeque<Fault>,
    pub(super) codes: HashMap<String, PendingCode>,
    pub(super) live_refresh: HashSet<String>,
    pub(super) current_access: Option<(String, Instant)>,
    /// When each access token issued expires (by this process's monotonic clock).
    pub(super) access_expiry: HashMap<String, Instant>,
    pub(super) scope: String,
    pub(super) serial: u64,
    /// Set while one answer is to carry `expires_in` as a string ([`Fault::ExpiresInAsString`]).
    pub(super) expires_in_as_string: bool,
    /// Fields that one answer carries instead ([`Fault::AnswerWith`]).
    pub(super) answer_patch: Option<Value>,
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

    pub(super) fn next(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Issues an access token (and a refresh token when asked) and answers like the provider.
    pub(super) fn issue(&mut self, with_refresh: bool) -> Value {
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

    pub(super) fn error(&self, code: &str, presented: Option<&str>) -> Response {
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

    pub(super) fn client_authenticated(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> bool {
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
    pub(super) fn standard_error(code: &str, description: &str) -> Response {
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

    pub(super) fn grant(
        &mut self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Response {
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
