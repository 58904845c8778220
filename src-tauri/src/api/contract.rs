//! The local HTTP API's contract (DESIGN "Local HTTP API"), written once for both of its
//! ends: the server (the router, the fast path, error answers) and the CLI's client. What
//! the two sides must agree on byte for byte lives here: the routes, the error body, and
//! the small request and answer bodies that are not engine views.

use serde::{Deserialize, Serialize};

use crate::engine::{AccountName, Remedy};

/// The routes, named once: the router, the fast path, the `/metrics` labels and the CLI's
/// client use these.
pub mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const ACCOUNTS: &str = "/v1/accounts";
    pub const TOKEN: &str = "/v1/accounts/{name}/token";
    pub const REFRESH: &str = "/v1/accounts/{name}/refresh";
    pub const REJECTED: &str = "/v1/accounts/{name}/rejected";
    pub const CALLERS: &str = "/v1/accounts/{name}/callers";
    pub const CONNECT: &str = "/v1/accounts/{name}/connect";
    pub const DISCONNECT: &str = "/v1/accounts/{name}/disconnect";
    pub const RELOAD_ACCOUNT: &str = "/v1/accounts/{name}/reload";
    pub const GRANT: &str = "/v1/accounts/{name}/grant";
    pub const SECRET: &str = "/v1/accounts/{name}/secret";
    pub const RELOAD: &str = "/v1/reload";
    pub const HISTORY: &str = "/v1/history";
    pub const EVENTS: &str = "/v1/events";
    pub const METRICS: &str = "/metrics";
    pub const TOKENBOY: &str = "/token";
    pub const PROXY: &str = "/v1/proxy/{name}/{*path}";
    pub const ALL: &[&str] = &[
        HEALTHZ,
        ACCOUNTS,
        TOKEN,
        REFRESH,
        REJECTED,
        CALLERS,
        CONNECT,
        DISCONNECT,
        RELOAD_ACCOUNT,
        GRANT,
        SECRET,
        RELOAD,
        HISTORY,
        EVENTS,
        METRICS,
        TOKENBOY,
        PROXY,
    ];
}

/// A route of one account, `{name}` filled in.
pub fn of_account(route: &str, name: &AccountName) -> String {
    route.replace("{name}", name.as_str())
}

/// `POST …/rejected`: the token an API refused.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    pub access_token: String,
}

/// Every error answer: `{"error": code, "message": text, "remedy": …}`, plus `"account"`
/// when it is about one. Fields in alphabetical order, as the JSON has always had them.
#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountName>,
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub remedy: Option<Remedy>,
}

/// `POST /v1/accounts/{name}/connect`'s optional body.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginConnect {
    #[serde(default)]
    pub device: bool,
    /// Seconds to wait for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `PUT /v1/accounts/{name}/secret`'s body. Only ever built from a secret the user typed,
/// and sent at once.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    pub secret: String,
}

/// `POST /v1/accounts/{name}/disconnect`'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Disconnected<A> {
    pub account: A,
    pub warning: Option<String>,
}
