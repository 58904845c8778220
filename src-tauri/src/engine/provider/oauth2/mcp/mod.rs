//! A remote MCP server's authorization, found from its URL alone as the MCP authorization
//! spec says: the 401's `WWW-Authenticate: Bearer resource_metadata=…` (or the well-known
//! places) gives the protected resource metadata (RFC 9728), which names the authorization
//! server, whose metadata (RFC 8414, or OpenID Connect discovery) gives the endpoints.
//! Without a configured `client_id`, Tokenwarden registers itself there (RFC 7591); the
//! registration is kept in the store in the account's client-secret item and reused.
//! Written by hand: the `oauth2` crate does neither discovery nor registration, and these
//! are a few JSON documents.

use serde::Deserialize;
use url::Url;

use super::{Discovered, Endpoints, Who};
use crate::engine::provider::error::{read_body, retry_after};
use crate::engine::provider::{endpoint_problem, shown, RefreshError};

/// The protected resource metadata (RFC 9728 §2), the fields used.
#[derive(Deserialize)]
struct ResourceMetadata {
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<Url>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// Authorization server metadata (RFC 8414 §2), the fields used.
#[derive(Deserialize)]
struct ServerMetadata {
    authorization_endpoint: Option<Url>,
    token_endpoint: Option<Url>,
    revocation_endpoint: Option<Url>,
    registration_endpoint: Option<Url>,
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// What the unauthenticated request's 401 said.
#[derive(Debug, Default, PartialEq, Eq)]
struct Challenge {
    resource_metadata: Option<String>,
    scope: Option<String>,
}

pub(super) async fn discover(
    http: &reqwest::Client,
    server: &Url,
    who: &Who<'_>,
    insecure_http: bool,
) -> Result<Discovered, RefreshError> {
    let challenge = challenge(http, server, who).await?;
    let given = match &challenge.resource_metadata {
        Some(text) => Some(Url::parse(text).map_err(|_| {
            who.bad_answer(&format!(
                "{}'s WWW-Authenticate names resource_metadata `{text}`, which is not a URL",
                shown(server)
            ))
        })?),
        None => None,
    };
    let places = match given {
        Some(url) => vec![url],
        None => well_known(server, "oauth-protected-resource"),
    };
    let mut resource = None;
    for place in &places {
        if let Some(found) = fetch_json::<ResourceMetadata>(http, place, who).await? {
            resource = Some(found);
            break;
        }
    }
    // A server of the 2025-03-26 spec publishes no resource metadata: its own origin is the
    // authorization server.
    let (issuer, resource_id, mut scopes) = match resource {
        Some(meta) => {
            let issuer = meta.authorization_servers.first().cloned().ok_or_else(|| {
                who.bad_answer(&format!(
                    "{}'s resource metadata names no authorization_servers",
                    shown(server)
                ))
            })?;
            let resource_id = match meta.resource {
                Some(r) => checked_resource(&r, server, who)?,
                None => server.clone(),
            };
            (issuer, resource_id, meta.scopes_supported)
        }
        None => {
            let mut origin = server.clone();
            origin.set_path("/");
            origin.set_query(None);
            (origin, server.clone(), Vec::new())
        }
    };
    // The 401's own scope is what this server wants (MCP: it wins over scopes_supported).
    if let Some(scope) = &challenge.scope {
        scopes = scope.split_whitespace().map(str::to_owned).collect();
    }
    let meta = server_metadata(http, &issuer, who).await?;
    if let Some(methods) = &meta.code_challenge_methods_supported {
        if !methods.iter().any(|m| m == "S256") {
            return Err(who.bad_answer(&format!(
                "the authorization server {} does not support PKCE S256 (it lists {}); MCP requires it, so it is not used",
                shown(&issuer),
                methods.join(", ")
            )));
        }
    }
    let endpoints = [
        ("authorization_endpoint", &meta.authorization_endpoint),
        ("token_endpoint", &meta.token_endpoint),
        ("revocation_endpoint", &meta.revocation_endpoint),
        ("registration_endpoint", &meta.registration_endpoint),
    ];
    for (field, endpoint) in endpoints {
        let Some(endpoint) = endpoint else { continue };
        if let Some(problem) = endpoint_problem(endpoint, insecure_http) {
            return Err(who.bad_answer(&format!(
                "the authorization server {} names {field} {}, which {problem}; refused",
                shown(&issuer),
                shown(endpoint)
            )));
        }
    }
    if meta.token_endpoint.is_none() || meta.authorization_endpoint.is_none() {
        return Err(who.bad_answer(&format!(
            "the authorization server {} names no authorization_endpoint or token_endpoint",
            shown(&issuer)
        )));
    }
    Ok(Discovered {
        endpoints: Endpoints {
            auth_url: meta.authorization_endpoint,
            token_url: meta.token_endpoint,
            revoke_url: meta.revocation_endpoint,
            device_auth_url: None,
        },
        issuer: Some(issuer),
        registration_url: meta.registration_endpoint,
        resource: Some(resource_id),
        scopes,
    })
}

/// Asks the server without a token, for its 401 challenge.
async fn challenge(
    http: &reqwest::Client,
    server: &Url,
    who: &Who<'_>,
) -> Result<Challenge, RefreshError> {
    let ping = r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#;
    let response = http
        .post(server.clone())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(ping)
        .send()
        .await
        .map_err(|e| who.network(&e))?;
    let status = response.status().as_u16();
    if status != 401 {
        // Some servers challenge only later requests; the well-known places may still say.
        tracing::debug!(status, server = %shown(server), "MCP server did not answer 401 to a request without a token");
        return Ok(Challenge::default());
    }
    Ok(response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(parse_challenge)
        .find(|c| c.resource_metadata.is_some() || c.scope.is_some())
        .unwrap_or_default())
}

/// `Bearer error="invalid_token", resource_metadata="https://…", scope="a b"`: the
/// parameters of the Bearer challenge (RFC 6750 §3), quoted or not.
fn parse_challenge(header: &str) -> Challenge {
    let Some(rest) = header
        .trim_start()
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("bearer"))
        .map(|_| &header.trim_start()[6..])
    else {
        return Challenge::default();
    };
    let mut found = Challenge::default();
    let mut chars = rest.trim_start().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return found;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars
                .by_ref()
                .take_while(|c| *c != ',' && !c.is_whitespace())
                .collect();
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "resource_metadata" => found.resource_metadata = Some(value),
            "scope" => found.scope = Some(value),
            _ => {}
        }
    }
}

/// The resource a server's metadata names must be the server itself (RFC 9728 §3.3): the
/// same origin, and a path the server's URL is under.
fn checked_resource(text: &str, server: &Url, who: &Who<'_>) -> Result<Url, RefreshError> {
    let refuse = || {
        who.bad_answer(&format!(
            "{}'s resource metadata is for another resource ({text}); refused",
            shown(server)
        ))
    };
    let resource = Url::parse(text).map_err(|_| refuse())?;
    let under = server
        .path()
        .starts_with(resource.path().trim_end_matches('/'));
    if resource.origin() != server.origin() || !under {
        return Err(refuse());
    }
    Ok(resource)
}

/// RFC 9728 §3.1 / RFC 8414 §3.1: the well-known segment goes between the origin and the
/// path; then the origin alone.
fn well_known(url: &Url, name: &str) -> Vec<Url> {
    let path = url.path().trim_end_matches('/');
    let mut places = Vec::new();
    let mut at = |p: String| {
        let mut u = url.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        if !places.contains(&u) {
            places.push(u);
        }
    };
    if !path.is_empty() {
        at(format!("/.well-known/{name}{path}"));
    }
    at(format!("/.well-known/{name}"));
    places
}

/// RFC 8414 first, then OpenID Connect discovery in both of its spellings.
async fn server_metadata(
    http: &reqwest::Client,
    issuer: &Url,
    who: &Who<'_>,
) -> Result<ServerMetadata, RefreshError> {
    let mut places = well_known(issuer, "oauth-authorization-server");
    places.extend(well_known(issuer, "openid-configuration"));
    places.push(super::oidc::discovery_url(issuer));
    for place in &places {
        if let Some(meta) = fetch_json::<ServerMetadata>(http, place, who).await? {
            return Ok(meta);
        }
    }
    Err(who.bad_answer(&format!(
        "the authorization server {} publishes no metadata (looked at {})",
        shown(issuer),
        places
            .iter()
            .map(Url::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// A JSON document, or `None` where there is none (404 and the like).
async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
    who: &Who<'_>,
) -> Result<Option<T>, RefreshError> {
    let response = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| who.network(&e))?;
    let status = response.status().as_u16();
    if matches!(status, 429 | 500..=599) {
        return Err(RefreshError::Http {
            account: who.account.clone(),
            provider: who.provider.to_owned(),
            status,
            code: Some("discovery".into()),
            retry_after: retry_after(response.headers()),
        });
    }
    if status != 200 {
        return Ok(None);
    }
    let body = read_body(response, who.account, who.provider).await?;
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        who.bad_answer(&format!(
            "{} is not the JSON expected there ({e})",
            shown(url)
        ))
    })
}

mod registration;
pub(super) use registration::register;
pub use registration::Registration;

#[cfg(test)]
mod tests;
