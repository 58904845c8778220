//! `ANY /v1/proxy/{name}/{path…}`: the request goes to the account's API (`api_base`, else
//! its preset's) with the current token attached where the provider wants it, so that a
//! program need not handle an expired or revoked token itself. When the provider refuses the
//! token (HTTP 401, or what its provider calls a refusal inside a 200), the refusal is
//! reported through the same single-flight, loop-guarded path as `POST …/rejected`, and the
//! request is sent once more with the new token; the caller sees only the second answer.
//!
//! Never an open proxy: the path stays under the base (`target`: no `..`, no encoded
//! slashes, no `;` path parameters, no absolute URLs), redirects are handed back, not
//! followed, and the caller's API key, User-Agent, cookies and hop-by-hop headers are not
//! forwarded (`headers`; cookies pass both ways only for an account with
//! `proxy_cookies = true`). Request bodies are read whole (up to [`MAX_REQUEST`], so they can
//! be sent twice); answers stream back (up to [`MAX_ANSWER`]). Nothing here logs a URL: the
//! token may be in its query.

mod headers;
mod target;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::StreamExt;
use url::Url;

use super::error::ApiError;
use super::guard::Caller;
use super::AppState;
use crate::api::taker::Asker;
use crate::engine::{EngineError, ProxyTarget, Secret, TokenIn, Via};

/// The largest request body forwarded; it is held to be sent again after a refusal.
pub const MAX_REQUEST: usize = 8 * 1024 * 1024;
/// The largest answer passed back; past it the answer is cut off.
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// How much of an answer is read to look for a refusal inside it; a refusal is never larger.
const ERRCODE_PEEK: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

/// The HTTP client for proxied requests: no redirects followed, no Referer, bounded time.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .connect_timeout(Duration::from_secs(10))
        .timeout(TIMEOUT)
        .build()
        .expect("the proxy's HTTP client builds")
}

pub async fn forward(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    asker: Asker,
    request: Request,
) -> Response {
    match proxy(&state, &caller, &asker, request).await {
        Ok(answer) => answer,
        Err(e) => e.into_response(),
    }
}

async fn proxy(
    state: &AppState,
    caller: &Caller,
    asker: &Asker,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (raw_name, rest) = target::split(parts.uri.path())
        .ok_or_else(|| ApiError::bad_request("the path is /v1/proxy/{name}/{path}"))?;
    let name = super::routes::name(raw_name, Some(caller))?;
    let account = state
        .engine
        .config()
        .account(&name)
        .cloned()
        .ok_or_else(|| EngineError::UnknownAccount(name.clone()))?;
    let Some(target) = &account.proxy else {
        let mut e = ApiError::new(
            StatusCode::NOT_FOUND,
            "no_api",
            format!("account `{name}` has no API to proxy to: set `api_base` in its config"),
        );
        e.account = Some(name);
        return Err(e);
    };
    let url = target::target_url(&target.base, rest, parts.uri.query(), &target.token_in)?;
    let body = axum::body::to_bytes(body, MAX_REQUEST).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "a proxied request body may be at most {} MiB",
                MAX_REQUEST / (1024 * 1024)
            ),
        )
    })?;
    let headers = headers::outgoing(&parts.headers, target.cookies);
    asker.may_take(&state.engine, &name).await?;
    let token = state
        .engine
        .token(&name, Duration::ZERO)
        .await?
        .access_token;
    // The token goes to the account's API, not to the caller; still, the caller used it.
    asker.took(&state.engine, &name, Via::Proxy).await;
    let refuses = |answer: &[u8]| account.provider.refuses(answer);
    let outgoing = Outgoing {
        method: &parts.method,
        url: &url,
        headers: &headers,
        body: &body,
        target,
        refuses: &refuses,
    };
    let first = outgoing.send(&state.proxy, &token).await?;
    let cookies = target.cookies;
    if !first.refused {
        return Ok(first.into_response(cookies));
    }
    // One refresh for every caller that saw this token refused, and never a loop: the same
    // guard as `POST …/rejected`. When it refuses, the caller gets the provider's answer.
    let renewed = match state.engine.rejected(&name, token.expose()).await {
        Ok(view) if !view.access_token.same_as(token.expose()) => view.access_token,
        Ok(_) => return Ok(first.into_response(cookies)),
        Err(e) => {
            tracing::info!(account = %name, error = %e, "a proxied request's token was refused and could not be renewed; passing the refusal on");
            return Ok(first.into_response(cookies));
        }
    };
    drop(first);
    Ok(outgoing
        .send(&state.proxy, &renewed)
        .await?
        .into_response(cookies))
}

/// A request ready to be sent with one token and, after a refusal, with the next.
struct Outgoing<'a> {
    method: &'a Method,
    url: &'a Url,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    target: &'a ProxyTarget,
    /// Whether a whole answer body refuses the token: the account's provider decides.
    refuses: &'a (dyn Fn(&[u8]) -> bool + Sync),
}

impl Outgoing<'_> {
    async fn send(&self, http: &reqwest::Client, token: &Secret) -> Result<Answer, ApiError> {
        let mut url = self.url.clone();
        if let TokenIn::Query(param) = &self.target.token_in {
            url.query_pairs_mut().append_pair(param, token.expose());
        }
        let mut request = http
            .request(self.method.clone(), url)
            .headers(self.headers.clone());
        if self.target.token_in == TokenIn::Header {
            request = request.bearer_auth(token.expose());
        }
        let response = request.body(self.body.clone()).send().await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!(
                    "the account's API did not answer ({})",
                    crate::engine::network_detail(&e)
                ),
            )
        })?;
        Answer::read(response, self.target.errcodes, self.refuses).await
    }
}

/// The provider's answer, with whether it refused the token.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// What was read to look for an errcode.
    head: Bytes,
    /// The rest, not yet read.
    rest: Option<reqwest::Response>,
    refused: bool,
}

impl Answer {
    async fn read(
        mut response: reqwest::Response,
        errcodes: bool,
        refuses: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<Self, ApiError> {
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut refused = status == StatusCode::UNAUTHORIZED;
        let mut head = Vec::new();
        let mut rest = Some(response);
        if errcodes && status == StatusCode::OK {
            let response = rest.as_mut().expect("just set");
            let mut ended = false;
            while head.len() < ERRCODE_PEEK {
                match response.chunk().await {
                    Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(e) => {
                        return Err(ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            "upstream_unreachable",
                            format!(
                                "the account's API broke off its answer ({})",
                                crate::engine::network_detail(&e)
                            ),
                        ))
                    }
                }
            }
            if ended {
                rest = None;
                refused = refuses(&head);
            }
        }
        Ok(Self {
            status,
            headers,
            head: head.into(),
            rest,
            refused,
        })
    }
}

impl Answer {
    /// The answer for the caller; `cookies`: the account's `proxy_cookies`.
    fn into_response(self, cookies: bool) -> Response {
        let head = self.head;
        let body = match self.rest {
            None => Body::from(head),
            Some(rest) => {
                let mut sent = head.len();
                let first = futures_util::stream::iter((!head.is_empty()).then(|| Ok(head)));
                let rest = rest.bytes_stream().map(move |chunk| {
                    let chunk = chunk.map_err(std::io::Error::other)?;
                    sent += chunk.len();
                    if sent > MAX_ANSWER {
                        return Err(std::io::Error::other("the proxied answer is too large"));
                    }
                    Ok(chunk)
                });
                Body::from_stream(first.chain(rest))
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = headers::returned(self.headers, cookies);
        response
    }
}
