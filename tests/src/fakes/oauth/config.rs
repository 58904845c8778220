//! What kind of provider a fake is ([`Flavor`], [`ClientAuth`], [`OAuthConfig`]) and what its
//! token endpoint can be told to answer instead of doing its work ([`Fault`]).

use std::time::Duration;

use serde_json::{json, Value};

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
