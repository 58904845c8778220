//! RFC 7591 dynamic client registration: Tokenwarden registers itself as a public client
//! (PKCE) for one loopback redirect; what the server gives back is kept in the store.

use serde::{Deserialize, Serialize};
use url::Url;

use super::super::{ClientAuth, Discovered, Who};
use crate::engine::provider::error::{read_body, retry_after};
use crate::engine::provider::{shown, RefreshError};
use crate::engine::secret::Secret;

/// A client registered with the authorization server, as kept in the store.
#[derive(Serialize, Deserialize)]
pub struct Registration {
    /// Marks the item's value as a registration, not a client secret typed by a user.
    pub(super) tokenwarden_registration: u8,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub auth: String,
    pub redirect_uri: Url,
    /// The authorization server it was made with: another one needs another registration.
    pub issuer: Option<Url>,
}

impl Registration {
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        serde_json::from_str::<Self>(secret.expose())
            .ok()
            .filter(|r| r.tokenwarden_registration == 1 && !r.client_id.is_empty())
    }

    pub fn to_secret(&self) -> Secret {
        Secret::new(serde_json::to_string(self).expect("a registration serializes"))
    }

    pub fn client_auth(&self) -> ClientAuth {
        match (self.auth.as_str(), &self.client_secret) {
            (_, None) | ("none", _) => ClientAuth::None,
            ("client_secret_basic", Some(_)) => ClientAuth::Basic,
            _ => ClientAuth::Post,
        }
    }
}

#[derive(Deserialize)]
struct Registered {
    client_id: String,
    client_secret: Option<String>,
    token_endpoint_auth_method: Option<String>,
}

/// RFC 7591: registers Tokenwarden as a public client (PKCE) with one loopback redirect.
pub(in crate::engine::provider::oauth2) async fn register(
    http: &reqwest::Client,
    found: &Discovered,
    redirect: &Url,
    scopes: &[String],
    who: &Who<'_>,
) -> Result<Registration, RefreshError> {
    let Some(endpoint) = &found.registration_url else {
        return Err(who.setup("the authorization server offers no dynamic client registration (no registration_endpoint): register a client there by hand and set `client_id` (and `secret set` if it has a secret)"));
    };
    let mut body = serde_json::json!({
        "client_name": "Tokenwarden",
        "redirect_uris": [redirect.as_str()],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if !scopes.is_empty() {
        body["scope"] = scopes.join(" ").into();
    }
    let response = http
        .post(endpoint.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| who.network(&e))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let retry_after = retry_after(response.headers());
        let body = crate::engine::provider::error::read_limited(response)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        return Err(RefreshError::Http {
            account: who.account.clone(),
            provider: who.provider.to_owned(),
            status,
            code: super::super::answer::standard_error_code(&body).or(Some("registration".into())),
            retry_after,
        });
    }
    let body = read_body(response, who.account, who.provider).await?;
    let got: Registered = serde_json::from_slice(&body).map_err(|_| {
        who.bad_answer(&format!(
            "the registration endpoint {} answered without a client_id",
            shown(endpoint)
        ))
    })?;
    Ok(Registration {
        tokenwarden_registration: 1,
        client_id: got.client_id,
        client_secret: got.client_secret,
        auth: got
            .token_endpoint_auth_method
            .unwrap_or_else(|| "none".into()),
        redirect_uri: redirect.clone(),
        issuer: found.issuer.clone(),
    })
}
