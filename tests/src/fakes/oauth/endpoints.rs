//! The fake's endpoints other than the token endpoint: authorize (consent, auto-approved),
//! device authorization, revocation, the profile and the account's API for the proxy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::Digest as _;

use super::state::{Decision, DeviceAuthorization, PendingCode};
use super::{ApiCall, ClientAuth, Shared, State};
use crate::fakes::{parse_form, token_value};

pub(super) async fn authorize(
    AxState(state): AxState<Shared>,
    RawQuery(query): RawQuery,
) -> Response {
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

pub(super) async fn device_authorization(
    AxState(state): AxState<Shared>,
    body: String,
) -> Response {
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

pub(super) async fn revoke(
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

pub(super) async fn profile(AxState(state): AxState<Shared>, headers: HeaderMap) -> Response {
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

pub(super) async fn api(
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
