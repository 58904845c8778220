//! The client registration of an account that registers itself (an `mcp` account without
//! `client_id`): made once with the authorization server (RFC 7591) for one loopback
//! redirect, kept in the store in the account's client-secret item, and reused by every
//! later consent and refresh. A new one is made only when there is none, when the server
//! discovery finds is another, or when the registered redirect's port is taken.

use tokio::net::TcpListener;

use super::redirect;
use crate::engine::config::Account;
use crate::engine::provider::oauth2::mcp::Registration;
use crate::engine::provider::oauth2::OAuth2Spec;
use crate::engine::refresh::attempt;
use crate::engine::store::item::SecretKey;
use crate::engine::{Engine, EngineError};

/// The redirect listener and the registration it belongs to.
pub(super) async fn ensure(
    engine: &Engine,
    account: &Account,
    spec: &OAuth2Spec,
) -> Result<(TcpListener, Registration), EngineError> {
    let name = &account.name;
    let http = &engine.shared.http;
    let found = spec.discover(http, name, &account.provider_name).await?;
    let kept = attempt::client_secret(engine, account)
        .await?
        .as_ref()
        .and_then(Registration::from_secret)
        .filter(|r| r.issuer == found.issuer);
    if let Some(kept) = kept {
        let port = kept.redirect_uri.port().unwrap_or(80);
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return Ok((listener, kept)),
            Err(e) => {
                tracing::info!(account = %name, port, error = %e, "the registered redirect's port is taken: registering again on another");
            }
        }
    }
    crate::engine::account::reading::writer_only(engine, name)?;
    let listener = redirect::bind(name, "127.0.0.1:0").await?;
    let uri = redirect::loopback_uri(&listener, "/callback")?;
    let registration = spec
        .register(http, (name, &account.provider_name), &found, &uri)
        .await?;
    let secret = registration.to_secret();
    engine
        .shared
        .keychain
        .set(SecretKey::ClientSecret(name.clone()), secret.clone())
        .await?;
    engine.with_slot(name, |s| s.client_secret = Some(secret))?;
    tracing::info!(account = %name, "registered with the MCP server's authorization server");
    Ok((listener, registration))
}
