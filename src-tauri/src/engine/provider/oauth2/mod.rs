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
    /// MCP: the server's URL, from which its authorization server is discovered; it is also
    /// the resource (RFC 8707) every authorization and token request names.
    pub mcp: Option<Url>,
    pub discovered: tokio::sync::OnceCell<Discovered>,
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

/// What discovery found: the endpoints, and for MCP the registration endpoint, the
/// resource to name and the scopes the server asks for.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    pub endpoints: Endpoints,
    /// The authorization server the endpoints are of.
    pub issuer: Option<Url>,
    pub registration_url: Option<Url>,
    pub resource: Option<Url>,
    pub scopes: Vec<String>,
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
pub mod mcp;
mod oidc;

use answer::Recording;
pub use device::DeviceStart;

impl OAuth2Spec {
    /// The account's endpoints: as configured, else discovered (once per loaded config)
    /// from the OIDC issuer or the MCP server.
    pub(super) async fn endpoints(
        &self,
        http: &reqwest::Client,
        who: &Who<'_>,
    ) -> Result<Discovered, RefreshError> {
        let found = match (&self.mcp, &self.issuer) {
            (Some(server), _) => {
                self.discovered
                    .get_or_try_init(|| mcp::discover(http, server, who, self.insecure_http))
                    .await?
            }
            (None, Some(issuer)) => {
                self.discovered
                    .get_or_try_init(|| async {
                        oidc::discover(http, issuer, who.account, who.provider, self.insecure_http)
                            .await
                            .map(|endpoints| Discovered {
                                endpoints,
                                issuer: Some(issuer.clone()),
                                ..Discovered::default()
                            })
                    })
                    .await?
            }
            (None, None) => {
                return Ok(Discovered {
                    endpoints: self.endpoints.clone(),
                    ..Discovered::default()
                })
            }
        };
        let given = &self.endpoints;
        let either = |given: &Option<Url>, found: &Option<Url>| given.clone().or(found.clone());
        Ok(Discovered {
            endpoints: Endpoints {
                auth_url: either(&given.auth_url, &found.endpoints.auth_url),
                token_url: either(&given.token_url, &found.endpoints.token_url),
                revoke_url: either(&given.revoke_url, &found.endpoints.revoke_url),
                device_auth_url: either(&given.device_auth_url, &found.endpoints.device_auth_url),
            },
            ..found.clone()
        })
    }

    /// The endpoints and what else discovery found, for a front end's flow.
    pub async fn discover(
        &self,
        http: &reqwest::Client,
        account: &AccountName,
        provider: &str,
    ) -> Result<Discovered, RefreshError> {
        self.endpoints(http, &Who { account, provider }).await
    }

    /// Registers Tokenwarden with the authorization server discovery found (RFC 7591), for
    /// consent flows redirected to `redirect`.
    pub async fn register(
        &self,
        http: &reqwest::Client,
        (account, provider): (&AccountName, &str),
        found: &Discovered,
        redirect: &Url,
    ) -> Result<mcp::Registration, RefreshError> {
        let who = Who { account, provider };
        mcp::register(http, found, redirect, self.scopes_for(found), &who).await
    }

    /// Whether Tokenwarden registers its own client (an `mcp` account without `client_id`).
    pub fn registers(&self) -> bool {
        self.mcp.is_some() && self.client_id.is_empty()
    }

    /// The scopes to ask for: as configured, else those the MCP server asked for.
    pub(super) fn scopes_for<'a>(&'a self, found: &'a Discovered) -> &'a [String] {
        if self.scopes.is_empty() {
            &found.scopes
        } else {
            &self.scopes
        }
    }

    /// Who the client is: the configured id and secret, or the registration the store
    /// keeps in the client-secret item.
    pub(super) fn identity(
        &self,
        secret: Option<&Secret>,
        who: &Who<'_>,
    ) -> Result<Identity, RefreshError> {
        if !self.registers() {
            return Ok(Identity {
                id: self.client_id.clone(),
                secret: secret.cloned(),
                auth: self.client_auth,
            });
        }
        let registration = secret
            .and_then(mcp::Registration::from_secret)
            .ok_or_else(|| RefreshError::NotConnected {
                account: who.account.clone(),
            })?;
        Ok(Identity {
            auth: registration.client_auth(),
            id: registration.client_id,
            secret: registration.client_secret.map(Secret::new),
        })
    }

    pub(super) fn client(
        &self,
        ep: &Endpoints,
        identity: &Identity,
        redirect: Option<&Url>,
    ) -> Client {
        let mut client = BasicClient::new(ClientId::new(identity.id.clone()))
            .set_auth_uri_option(ep.auth_url.clone().map(AuthUrl::from_url))
            .set_token_uri_option(ep.token_url.clone().map(TokenUrl::from_url))
            .set_revocation_url_option(ep.revoke_url.clone().map(RevocationUrl::from_url))
            .set_auth_type(match identity.auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post | ClientAuth::None => AuthType::RequestBody,
            });
        if let (Some(secret), false) = (&identity.secret, identity.auth == ClientAuth::None) {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        if let Some(redirect) = redirect {
            client = client.set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
        }
        client
    }

    /// What every call to the provider starts from: names for messages, the endpoints
    /// (discovered once for OIDC and MCP), who the client is, and a fresh recording of the
    /// answer.
    async fn call<'a>(&self, req: &'a FetchRequest<'_>) -> Result<Call<'a>, RefreshError> {
        let who = Who {
            account: req.account,
            provider: req.provider,
        };
        let found = self.endpoints(req.http, &who).await?;
        let identity = self.identity(req.client_secret, &who)?;
        Ok(Call {
            who,
            found,
            identity,
            seen: Arc::new(Mutex::new(Recording::default())),
        })
    }
}

/// One call's setting out: see [`OAuth2Spec::call`].
pub(super) struct Call<'a> {
    who: Who<'a>,
    found: Discovered,
    identity: Identity,
    seen: Arc<Mutex<Recording>>,
}

/// The client as the authorization server knows it.
pub(super) struct Identity {
    id: String,
    secret: Option<Secret>,
    auth: ClientAuth,
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
