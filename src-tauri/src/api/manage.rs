//! Routes that change an account, so that while an engine runs it alone writes secrets (one
//! writer per account): consent flows (begin, follow, cancel), disconnect, the client secret,
//! re-reading the keychain, and reloading the config file. Each is one engine call, and each
//! but following a flow takes a [`Writer`]: a key that only reads must not be able to
//! revoke an account, swap its client secret, or connect it to the key holder's own
//! provider account.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;

use super::contract::{BeginConnect, Disconnected, NewSecret};
use super::error::ApiError;
use super::guard::Caller;
use super::routes::{body_bytes, params, seconds, Named, Params};
use super::AppState;
use crate::engine::{AccountView, ConnectFlow, ConnectStart, ConnectStatus, Secret, TokenSet};

/// How long a flow begun over the API waits for the browser (or device) by default.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest a `?wait=` may hold a request.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Proof that the caller may change accounts: the engine's key (or this user's processes on
/// its socket) or a key made with `--write`. Extracted after [`Named`], so that a key limited
/// to other accounts still gets the same 404 as for an account in no config.
pub struct Writer;

impl<S: Send + Sync> FromRequestParts<S> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(caller) if caller.may_write() => Ok(Self),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "read_only_key",
                "this API key is read-only: connecting, disconnecting, setting a secret and reloading need a key made with `tokenwarden api-key create LABEL --write`",
            )),
        }
    }
}

/// Parses an optional JSON body strictly; the serde error is not quoted (it could echo a secret).
fn body<T: serde::de::DeserializeOwned + Default>(
    raw: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, ApiError> {
    let raw = body_bytes(raw)?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&raw)
        .map_err(|_| ApiError::bad_request(format!("the body must be JSON {shape}")))
}

pub async fn begin_connect(
    State(s): State<AppState>,
    Named(name): Named,
    _: Writer,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<ConnectStart>, ApiError> {
    let begin: BeginConnect = body(raw, r#"{"device": false, "timeout": SECONDS}"#)?;
    let flow = ConnectFlow::device(begin.device);
    let timeout = begin.timeout.map_or(CONSENT_TIMEOUT, Duration::from_secs);
    Ok(Json(s.engine.begin_connect(&name, flow, timeout).await?))
}

pub async fn connect_status(
    State(s): State<AppState>,
    Named(name): Named,
    query: Result<Params, QueryRejection>,
) -> Result<Json<ConnectStatus>, ApiError> {
    let query = params(query)?;
    let wait = seconds(&query, "wait")?.min(MAX_WAIT);
    let status = tokio::select! {
        status = s.engine.connect_status(&name, wait) => status?,
        _ = s.stop.cancelled() => s.engine.connect_status(&name, Duration::ZERO).await?,
    };
    Ok(Json(status))
}

pub async fn cancel_connect(
    State(s): State<AppState>,
    Named(name): Named,
    _: Writer,
) -> Result<Json<ConnectStatus>, ApiError> {
    Ok(Json(s.engine.cancel_connect_settled(&name).await?))
}

pub async fn disconnect(
    State(s): State<AppState>,
    Named(name): Named,
    _: Writer,
) -> Result<Json<Disconnected<AccountView>>, ApiError> {
    let warning = s.engine.disconnect(&name).await?;
    Ok(Json(Disconnected {
        account: s.engine.view(&name)?,
        warning,
    }))
}

pub async fn reload_account(
    State(s): State<AppState>,
    Named(name): Named,
    _: Writer,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(s.engine.reload_account(&name).await?))
}

pub async fn set_secret(
    State(s): State<AppState>,
    Named(name): Named,
    _: Writer,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<AccountView>, ApiError> {
    let new: NewSecret = body(raw, r#"{"secret": "..."}"#)?;
    let value = Secret::new(new.secret);
    Ok(Json(s.engine.set_client_secret(&name, value).await?))
}

pub async fn reload_config(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    _: Writer,
) -> Result<Json<serde_json::Value>, ApiError> {
    if caller.scope().is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this key is limited to some accounts; reloading the whole config needs a key to all accounts (or reload one account)",
        ));
    }
    let count = s.engine.reload_config().await?;
    Ok(Json(serde_json::json!({ "accounts": count })))
}

/// A grant obtained by a CLI `connect` that waited for the browser while this engine started:
/// the CLI hands it over so that nothing is lost and this engine stays the one writer. Only
/// the engine's own key may do this (whoever holds it can already write the keychain).
pub async fn hand_over_grant(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Named(name): Named,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<AccountView>, ApiError> {
    if !caller.is_engine_key() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only Tokenwarden's own CLI may hand over a grant",
        ));
    }
    let raw = body_bytes(raw)?;
    let text = String::from_utf8(raw.to_vec())
        .map_err(|_| ApiError::bad_request("the body must be a token set"))?;
    let set = TokenSet::from_stored_json(&Secret::new(text))
        .ok_or_else(|| ApiError::bad_request("the body must be a token set"))?;
    s.engine
        .adopt_grant(&name, set, std::time::Instant::now())
        .await?;
    Ok(Json(s.engine.view(&name)?))
}
