//! One handler per route: parse the request strictly (bad input is a JSON 400, never
//! axum's plain-text rejection), make one engine call, answer JSON.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::error::ApiError;
use super::guard::Caller;
use super::taker::Asker;
use super::tokenboy::TokenBoyAnswer;
use super::AppState;
use crate::engine::{AccountName, EngineError, Entry, TakerRow, TokenView, Via};

pub(super) type Params = Query<HashMap<String, String>>;

const HISTORY_DEFAULT: usize = 100;
const HISTORY_MAX: usize = crate::engine::MAX_HISTORY_ROWS;
/// The largest page of `/v1/accounts`: about 3.4 MB of JSON.
const ACCOUNTS_PAGE_MAX: usize = 10_000;

/// The account named in the path, if the caller's key may see it. To a key limited to
/// other accounts it does not exist: the same 404 as a name in no config.
pub struct Named(pub AccountName);

impl<S: Send + Sync> FromRequestParts<S> for Named {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("the account name in the path is not valid"))?;
        let caller = parts.extensions.get::<Caller>();
        name(&raw, caller).map(Self)
    }
}

/// An account name from a path or a query, if the caller may see it.
pub(super) fn name(raw: &str, caller: Option<&Caller>) -> Result<AccountName, ApiError> {
    let name: AccountName = raw
        .parse()
        .map_err(|e: crate::engine::BadAccountName| ApiError::bad_request(e.to_string()))?;
    if caller.is_some_and(|c| !c.may_see(&name)) {
        return Err(EngineError::UnknownAccount(name).into());
    }
    Ok(name)
}

/// A request body, or why it could not be read (too large, cut off).
pub(super) fn body_bytes(
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
    raw.map_err(|e| {
        ApiError::new(
            e.status(),
            "bad_request",
            "the body could not be read (at most 64 KiB)",
        )
    })
}

pub(super) fn params(
    raw: Result<Params, axum::extract::rejection::QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    raw.map(|Query(q)| q)
        .map_err(|_| ApiError::bad_request("the query string is not valid"))
}

/// `limit` from the query, 1 to `max`, if given.
fn limit(params: &HashMap<String, String>, max: usize) -> Result<Option<usize>, ApiError> {
    params
        .get("limit")
        .map(|v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("`limit` must be a whole number from 1 to {max}"))
                })
        })
        .transpose()
}

pub(super) fn seconds(params: &HashMap<String, String>, key: &str) -> Result<Duration, ApiError> {
    match params.get(key) {
        None => Ok(Duration::ZERO),
        Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
            ApiError::bad_request(format!("`{key}` must be a whole number of seconds"))
        }),
    }
}

/// 200 `ok` while the engine does its job; 503 with the reason once it cannot (a panic
/// left the accounts' state half-changed, or the scheduler stopped), so a supervisor
/// restarts it rather than trusting a process that no longer refreshes.
pub async fn healthz(State(s): State<AppState>) -> axum::response::Response {
    match s.engine.health() {
        Ok(()) => "ok".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("failing: {why}")).into_response(),
    }
}

/// Every account the key may see, in config order: the whole list, as it always was, or with
/// `?limit=N` a page of it, and `&after=NAME` the page after that account. A page with more
/// behind it says where the next one is in a `Link: <...>; rel="next"` header (RFC 8288), so
/// the body stays the same array either way.
pub async fn accounts(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Params, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let query = params(query)?;
    if query.contains_key("after") && !query.contains_key("limit") {
        return Err(ApiError::bad_request("`after` needs `limit`"));
    }
    let limit = limit(&query, ACCOUNTS_PAGE_MAX)?.unwrap_or(usize::MAX);
    let after = query
        .get("after")
        .map(|raw| name(raw, Some(&caller)))
        .transpose()?;
    // An `after` removed since the page before is the usual 404 `unknown_account`.
    let page = match (
        s.engine.page(after.as_ref(), limit, |n| caller.may_see(n)),
        after,
    ) {
        (Some(page), _) => page,
        (None, after) => {
            return Err(
                EngineError::UnknownAccount(after.expect("only `after` is looked up")).into(),
            )
        }
    };
    let next = match page.views.last() {
        Some(last) if page.more => Some(format!(
            "</v1/accounts?limit={limit}&after={}>; rel=\"next\"",
            last.name
        )),
        _ => None,
    };
    let mut answer = Json(page.views).into_response();
    if let Some(link) = next.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        answer.headers_mut().insert(header::LINK, link);
    }
    Ok(answer)
}

pub async fn token(
    State(s): State<AppState>,
    Named(name): Named,
    asker: Asker,
    query: Result<Params, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TokenView>, ApiError> {
    let query = params(query)?;
    let min_valid = seconds(&query, "min_valid")?;
    asker.may_take(&s.engine, &name).await?;
    let token = s.engine.token(&name, min_valid).await?;
    asker.took(&s.engine, &name, Via::Api).await;
    Ok(Json(token))
}

pub async fn refresh(
    State(s): State<AppState>,
    Named(name): Named,
    asker: Asker,
) -> Result<Json<TokenView>, ApiError> {
    asker.may_take(&s.engine, &name).await?;
    let token = s.engine.refresh(&name).await?;
    asker.took(&s.engine, &name, Via::Api).await;
    Ok(Json(token))
}

pub async fn rejected(
    State(s): State<AppState>,
    Named(name): Named,
    asker: Asker,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<TokenView>, ApiError> {
    let body = body_bytes(body)?;
    // The serde error is not quoted: it could echo the token.
    let report: crate::api::contract::Rejected = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request(r#"the body must be JSON {"access_token": "..."}"#))?;
    asker.may_take(&s.engine, &name).await?;
    let token = s.engine.rejected(&name, &report.access_token).await?;
    asker.took(&s.engine, &name, Via::Api).await;
    Ok(Json(token))
}

pub async fn history(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Params, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let query = params(query)?;
    let name = query
        .get("account")
        .map(|raw| name(raw, Some(&caller)))
        .transpose()?;
    let limit = limit(&query, HISTORY_MAX)?.unwrap_or(HISTORY_DEFAULT);
    let accounts = match (name, caller.scope()) {
        (Some(name), _) => Some(vec![name]),
        (None, Some(scope)) => Some(scope.to_vec()),
        (None, None) => None,
    };
    Ok(Json(s.engine.history(accounts.as_deref(), limit).await?))
}

/// TokenBoy's `GET /token?name=…`, for clients written against it.
pub async fn tokenboy(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    asker: Asker,
    query: Result<Params, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let query = params(query)?;
    let raw = query
        .get("name")
        .ok_or_else(|| ApiError::bad_request("`name` is required"))?;
    let name = name(raw, Some(&caller))?;
    asker.may_take(&s.engine, &name).await?;
    let token = s.engine.token(&name, Duration::ZERO).await?;
    asker.took(&s.engine, &name, Via::Tokenboy).await;
    Ok(Json(TokenBoyAnswer::of(&token)).into_response())
}

/// Who took this account's tokens: programs, counts, first and last time; never a token.
pub async fn callers(
    State(s): State<AppState>,
    Named(name): Named,
) -> Result<Json<Vec<TakerRow>>, ApiError> {
    Ok(Json(
        s.engine.takers(Some(std::slice::from_ref(&name))).await?,
    ))
}

/// Server-Sent Events of engine events. A subscriber that falls behind gets a `lagged`
/// event and should re-read `/v1/accounts`. Subscribers past the cap get 503.
pub async fn events(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = s.subscribers.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers",
            format!(
                "{} event streams are open, the most served at once; close one or try again later",
                crate::engine::MAX_EVENT_SUBSCRIBERS
            ),
        )
    })?;
    let stream = BroadcastStream::new(s.engine.subscribe())
        // A key limited to some accounts hears only of them (a config reload names none).
        .filter(move |item| {
            let shown = match item {
                Ok(event) => caller.may_hear(event),
                Err(_) => true,
            };
            std::future::ready(shown)
        })
        .map(|item| {
            Ok(match item {
                Ok(event) => {
                    let json = serde_json::to_value(&event).unwrap_or_default();
                    let kind = json
                        .get("kind")
                        .and_then(|k| k.as_str())
                        .unwrap_or("event")
                        .to_owned();
                    Event::default().event(kind).data(json.to_string())
                }
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
            })
        })
        .take_until(s.stop.clone().cancelled_owned())
        // The permit goes with the stream: it is returned when the subscriber leaves.
        .inspect(move |_| {
            let _ = &permit;
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn metrics(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.update_expiry_gauges();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &s.engine.metrics().registry).map_err(
        |_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "could not encode metrics",
            )
        },
    )?;
    if caller.scope().is_some() {
        text = crate::api::scope::metrics_for(&text, |name| caller.may_see_str(name));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see the API section of the README",
    )
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
