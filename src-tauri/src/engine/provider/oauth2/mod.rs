//! RFC 6749 grants through the `oauth2` crate: authorization code with PKCE S256 and CSRF
//! state, refresh (rotation-aware), client credentials, revocation (RFC 7009) and the device
//! grant (RFC 8628). This file holds the account's OAuth settings and what every call
//! starts from; the calls themselves are in:
//! * `grants`  consent URL, code exchange, refresh, revocation
//! * `device`  the device authorization grant
//! * `answer`  reading answers: the recording HTTP client (the crate drops the status and
//!   Retry-After that classification needs), tokens, and errors classified

use std::sync::{Arc, Mutex};

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    PkceCodeVerifier, RedirectUrl, RevocationUrl, TokenUrl,
};
use url::Url;

use super::{FetchRequest, RefreshError};
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantKind {
    AuthorizationCode,
    ClientCredentials,
    DeviceCode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// RFC 8252: any port on 127.0.0.1, chosen when the flow starts.
    AnyLoopbackPort,
    /// Matched exactly by the provider (legacy Fitbit): this port, this path.
    Exact(Url),
}

/// How a provider spells its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Standard,
    /// `{"errors":[{"errorType":"invalid_grant",…}],"success":false}`
    FitbitLegacy,
}

#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    pub auth_url: Option<Url>,
    pub token_url: Option<Url>,
    pub revoke_url: Option<Url>,
    pub device_auth_url: Option<Url>,
}

#[derive(Debug)]
pub struct OAuth2Spec {
    pub client_id: String,
    pub grant: GrantKind,
    pub endpoints: Endpoints,
    /// OIDC: endpoints not given in the config come from this issuer's discovery document.
    pub issuer: Option<Url>,
    pub discovered: tokio::sync::OnceCell<Endpoints>,
    pub redirect: Redirect,
    pub scopes: Vec<String>,
    /// Strava joins scopes with commas; everyone else with spaces.
    pub scope_separator: char,
    pub auth_params: Vec<(String, String)>,
    pub client_auth: ClientAuth,
    pub pkce: bool,
    pub dialect: Dialect,
    /// What to tell the user when the token endpoint answers 410 Gone.
    pub gone_advice: Option<String>,
    /// `allow_insecure_http = true`: discovered endpoints may be plain http to another
    /// machine, as the config's own may.
    pub insecure_http: bool,
}

/// A consent flow in progress: the URL to open and what the redirect must match.
pub struct Consent {
    pub url: Url,
    pub state: CsrfToken,
    pub verifier: Option<PkceCodeVerifier>,
}

type Client = BasicClient<
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

mod answer;
mod device;
mod grants;
mod oidc;

use answer::Recording;
pub use device::DeviceStart;

impl OAuth2Spec {
    pub(super) async fn endpoints(
        &self,
        http: &reqwest::Client,
        who: &Who<'_>,
    ) -> Result<Endpoints, RefreshError> {
        let Some(issuer) = &self.issuer else {
            return Ok(self.endpoints.clone());
        };
        let found = self
            .discovered
            .get_or_try_init(|| {
                oidc::discover(http, issuer, who.account, who.provider, self.insecure_http)
            })
            .await?;
        let given = &self.endpoints;
        Ok(Endpoints {
            auth_url: given.auth_url.clone().or_else(|| found.auth_url.clone()),
            token_url: given.token_url.clone().or_else(|| found.token_url.clone()),
            revoke_url: given
                .revoke_url
                .clone()
                .or_else(|| found.revoke_url.clone()),
            device_auth_url: given
                .device_auth_url
                .clone()
                .or_else(|| found.device_auth_url.clone()),
        })
    }

    pub(super) fn client(
        &self,
        ep: &Endpoints,
        secret: Option<&Secret>,
        redirect: Option<&Url>,
    ) -> Client {
        let mut client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri_option(ep.auth_url.clone().map(AuthUrl::from_url))
            .set_token_uri_option(ep.token_url.clone().map(TokenUrl::from_url))
            .set_revocation_url_option(ep.revoke_url.clone().map(RevocationUrl::from_url))
            .set_auth_type(match self.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post | ClientAuth::None => AuthType::RequestBody,
            });
        if let (Some(secret), false) = (secret, self.client_auth == ClientAuth::None) {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        if let Some(redirect) = redirect {
            client = client.set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
        }
        client
    }

    /// What every call to the provider starts from: names for messages, the endpoints
    /// (discovered once for OIDC), and a fresh recording of the answer.
    async fn call<'a>(
        &self,
        req: &'a FetchRequest<'_>,
    ) -> Result<(Who<'a>, Endpoints, Arc<Mutex<Recording>>), RefreshError> {
        let who = Who {
            account: req.account,
            provider: req.provider,
        };
        let ep = self.endpoints(req.http, &who).await?;
        Ok((who, ep, Arc::new(Mutex::new(Recording::default()))))
    }
}

/// Names for messages.
pub(super) struct Who<'a> {
    account: &'a AccountName,
    provider: &'a str,
}

impl Who<'_> {
    pub(super) fn setup(&self, what: &str) -> RefreshError {
        RefreshError::Setup {
            account: self.account.clone(),
            what: format!("{}: {what}", self.provider),
        }
    }
    pub(super) fn network(&self, e: &reqwest::Error) -> RefreshError {
        RefreshError::network(self.account, self.provider, e)
    }
    pub(super) fn bad_answer(&self, what: &str) -> RefreshError {
        RefreshError::bad_answer(self.account, self.provider, what)
    }
}
