//! `[metadata]`: a GCE-style metadata server, so that Google's client libraries, unchanged,
//! take an account's token (`GCE_METADATA_HOST`/`GCE_METADATA_IP` pointed here). It has no
//! key, as the real one has none: it answers only processes of this user (the owner of the
//! connecting socket, read from the kernel's socket table), with `Metadata-Flavor: Google`
//! and no `X-Forwarded-For` (what the real one demands, against requests a web page or a
//! proxy makes on someone's behalf), on its own loopback port, and nothing but the
//! service-account paths below.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, MetadataSettings, Via};

/// The token handed out stays valid this long where it can: Google's libraries fetch again
/// 3 min 45 s before expiry, so a shorter one would be fetched on every call.
const MIN_VALID: Duration = Duration::from_secs(5 * 60);
const FLAVOR: &str = "metadata-flavor";
const ROOT: &str = "/computeMetadata/v1";

#[derive(Clone)]
struct Served {
    engine: Engine,
    settings: MetadataSettings,
    /// Where it listens: the remote end of every connection the kernel lists for it.
    listen: SocketAddr,
}

/// Serves until `stop`.
pub async fn serve(
    engine: Engine,
    settings: MetadataSettings,
    listener: TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    if cfg!(not(target_os = "linux")) {
        tracing::warn!(%listen, "the metadata server cannot tell which user connects on this system (it reads Linux's socket table), so it refuses every request");
    }
    let served = Served {
        engine,
        settings,
        listen,
    };
    let accounts = format!("{ROOT}/instance/service-accounts");
    let app = Router::new()
        .route("/", get(ping))
        .route(&format!("{ROOT}/"), get(ping))
        .route(&format!("{accounts}/{{who}}/"), get(info))
        .route(&format!("{accounts}/{{who}}/token"), get(token))
        .route(&format!("{accounts}/{{who}}/email"), get(email))
        .route(&format!("{accounts}/{{who}}/scopes"), get(scopes))
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "not served here") })
        .layer(from_fn_with_state(served.clone(), guard))
        .with_state(served);
    tracing::info!(%listen, "metadata server for Google's client libraries listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await
}

/// Our user, the header, no forwarding; and every answer says `Metadata-Flavor: Google`.
async fn guard(
    State(s): State<Served>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let refused = if !our_user(peer, s.listen) {
        Some((
            StatusCode::FORBIDDEN,
            "this metadata server answers only processes of the user Tokenwarden runs as",
        ))
    } else if request.headers().contains_key("x-forwarded-for") {
        Some((
            StatusCode::FORBIDDEN,
            "a forwarded request (X-Forwarded-For) is refused",
        ))
    } else if request.headers().get(FLAVOR).map(HeaderValue::as_bytes) != Some(b"Google") {
        Some((
            StatusCode::FORBIDDEN,
            "missing the header Metadata-Flavor: Google",
        ))
    } else {
        None
    };
    let mut response = match refused {
        Some((status, why)) => {
            tracing::debug!(%peer, why, "metadata request refused");
            refuse(status, why)
        }
        None => next.run(request).await,
    };
    response
        .headers_mut()
        .insert(FLAVOR, HeaderValue::from_static("Google"));
    response
}

/// Whether the process at the other end of the connection runs as our user, by the kernel's
/// word; where it is not asked (not Unix), never.
fn our_user(peer: SocketAddr, listen: SocketAddr) -> bool {
    #[cfg(unix)]
    {
        crate::engine::connection_uid(peer, listen) == Some(crate::engine::euid())
    }
    #[cfg(not(unix))]
    {
        let _ = (peer, listen);
        false
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

async fn ping() -> &'static str {
    "computeMetadata/\n"
}

/// Why a service-account path is not answered.
enum Refusal {
    UnknownAccount,
    /// The engine has no token to hand out (its error, which never holds a secret).
    NoToken(String),
    /// `[api] ask_first`: the program was not allowed.
    NotApproved(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::UnknownAccount => refuse(StatusCode::NOT_FOUND, "no such service account"),
            Self::NoToken(why) => refuse(StatusCode::SERVICE_UNAVAILABLE, &why),
            Self::NotApproved(why) => refuse(StatusCode::FORBIDDEN, &why),
        }
    }
}

/// `default`, or the email the libraries learn from `…/default/` and use from then on.
fn known(s: &Served, who: &str) -> Result<(), Refusal> {
    if who == "default" || who == s.settings.email {
        Ok(())
    } else {
        Err(Refusal::UnknownAccount)
    }
}

/// A token valid for [`MIN_VALID`] where the provider's tokens live that long, else any
/// valid one.
async fn current(s: &Served) -> Result<crate::engine::TokenView, Refusal> {
    let name = &s.settings.account;
    let preferred = s.engine.token(name, MIN_VALID).await;
    let token = match preferred {
        Ok(t) => Ok(t),
        Err(first) => s
            .engine
            .token(name, Duration::ZERO)
            .await
            .map_err(|_| first),
    };
    token.map_err(|e| {
            tracing::warn!(account = %s.settings.account, error = %e, "metadata server: no token to hand out");
            Refusal::NoToken(e.to_string())
        })
}

#[derive(serde::Deserialize)]
struct Recursive {
    recursive: Option<String>,
}

/// `…/default/?recursive=true`: what google-auth reads before its first token.
async fn info(
    State(s): State<Served>,
    Path(who): Path<String>,
    Query(q): Query<Recursive>,
) -> Result<Response, Refusal> {
    known(&s, &who)?;
    if q.recursive.as_deref() != Some("true") {
        return Ok("aliases\nemail\nscopes\ntoken\n".into_response());
    }
    let scopes = scope_list(current(&s).await?.scope.as_deref());
    Ok(Json(serde_json::json!({
        "aliases": ["default"],
        "email": s.settings.email,
        "scopes": scopes,
    }))
    .into_response())
}

async fn token(
    State(s): State<Served>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(who): Path<String>,
) -> Result<Response, Refusal> {
    known(&s, &who)?;
    let identity = crate::api::taker::Identity::tcp(peer, Some(s.listen));
    identity.resolve().await;
    s.engine
        .may_take(&s.settings.account, identity.process_ref())
        .await
        .map_err(|e| Refusal::NotApproved(e.to_string()))?;
    let t = current(&s).await?;
    s.engine
        .took(&s.settings.account, identity.taker(None, Via::Metadata));
    Ok(Json(serde_json::json!({
        "access_token": t.access_token.expose(),
        "expires_in": t.expires_in,
        "token_type": "Bearer",
    }))
    .into_response())
}

async fn email(State(s): State<Served>, Path(who): Path<String>) -> Result<String, Refusal> {
    known(&s, &who)?;
    Ok(s.settings.email.clone())
}

async fn scopes(State(s): State<Served>, Path(who): Path<String>) -> Result<String, Refusal> {
    known(&s, &who)?;
    let mut text = scope_list(current(&s).await?.scope.as_deref()).join("\n");
    text.push('\n');
    Ok(text)
}

fn scope_list(scope: Option<&str>) -> Vec<String> {
    scope
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
