//! RFC 6749 grants through the `oauth2` crate: authorization code with PKCE S256 and CSRF
//! state, refresh (rotation-aware), client credentials, and revocation (RFC 7009).
//! The crate's HTTP client is a closure over our reqwest that remembers the status and
//! Retry-After, which the crate itself drops but classification needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse, BasicTokenType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, RevocationUrl, Scope, TokenResponse, TokenUrl,
};
use url::Url;

use super::error::{network_detail, retry_after};
use super::lenient;
use super::{FetchRequest, Issued, RefreshError};
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

/// Status and Retry-After of the last answer, which `RequestTokenError` does not carry.
#[derive(Clone, Copy, Default)]
struct Seen {
    status: u16,
    retry_after: Option<Duration>,
}

/// The last answer: what classification needs, and the body, so that a 2xx answer the
/// crate refuses can still give up the refresh token it carries.
#[derive(Default)]
struct Recording {
    seen: Seen,
    body: Vec<u8>,
}

impl OAuth2Spec {
    async fn endpoints(
        &self,
        http: &reqwest::Client,
        who: &Who<'_>,
    ) -> Result<Endpoints, RefreshError> {
        let Some(issuer) = &self.issuer else {
            return Ok(self.endpoints.clone());
        };
        let found = self
            .discovered
            .get_or_try_init(|| super::oidc::discover(http, issuer, who.account, who.provider))
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

    fn client(&self, ep: &Endpoints, secret: Option<&Secret>, redirect: Option<&Url>) -> Client {
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

    /// Builds the authorization URL for a consent flow that will be redirected to `redirect`.
    pub async fn begin_consent(
        &self,
        http: &reqwest::Client,
        account: &AccountName,
        provider: &str,
        redirect: &Url,
    ) -> Result<Consent, RefreshError> {
        let who = Who { account, provider };
        let ep = self.endpoints(http, &who).await?;
        if ep.auth_url.is_none() {
            return Err(who.setup("no auth_url: set `auth_url` (or `issuer`) in the config"));
        }
        let client = self.client(&ep, None, Some(redirect));
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .map_err(|e| who.setup(&e.to_string()))?;
        if self.scope_separator == ' ' {
            request = request.add_scopes(self.scopes.iter().cloned().map(Scope::new));
        } else if !self.scopes.is_empty() {
            request = request
                .add_extra_param("scope", self.scopes.join(&self.scope_separator.to_string()));
        }
        for (key, value) in &self.auth_params {
            request = request.add_extra_param(key.clone(), value.clone());
        }
        let verifier = if self.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            Some(verifier)
        } else {
            None
        };
        let (url, state) = request.url();
        Ok(Consent {
            url,
            state,
            verifier,
        })
    }

    /// Trades an authorization code for the first token set.
    pub async fn exchange_code(
        &self,
        req: &FetchRequest<'_>,
        code: String,
        verifier: Option<PkceCodeVerifier>,
        redirect: &Url,
    ) -> Result<Issued, RefreshError> {
        let who = Who {
            account: req.account,
            provider: req.provider,
        };
        let ep = self.endpoints(req.http, &who).await?;
        let client = self.client(&ep, req.client_secret, Some(redirect));
        let seen = Arc::new(Mutex::new(Recording::default()));
        let http = recording_client(req.http, &seen);
        let mut exchange = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| who.setup(&e.to_string()))?;
        if let Some(verifier) = verifier {
            exchange = exchange.set_pkce_verifier(verifier);
        }
        let answer = exchange.request_async(&http).await;
        self.issued(&who, answer, &seen)
    }

    /// Gets a new access token: refresh_token grant, or client credentials again.
    pub async fn refresh(&self, req: &FetchRequest<'_>) -> Result<Issued, RefreshError> {
        let who = Who {
            account: req.account,
            provider: req.provider,
        };
        let ep = self.endpoints(req.http, &who).await?;
        let client = self.client(&ep, req.client_secret, None);
        let seen = Arc::new(Mutex::new(Recording::default()));
        let http = recording_client(req.http, &seen);
        let answer = match self.grant {
            GrantKind::ClientCredentials => {
                client
                    .exchange_client_credentials()
                    .map_err(|e| who.setup(&e.to_string()))?
                    .add_scopes(self.scopes.iter().cloned().map(Scope::new))
                    .request_async(&http)
                    .await
            }
            GrantKind::AuthorizationCode | GrantKind::DeviceCode => {
                let refresh = req
                    .current
                    .and_then(|t| t.refresh.as_ref())
                    .ok_or_else(|| RefreshError::NotConnected {
                        account: req.account.clone(),
                    })?;
                let token = RefreshToken::new(refresh.expose().to_owned());
                client
                    .exchange_refresh_token(&token)
                    .map_err(|e| who.setup(&e.to_string()))?
                    .request_async(&http)
                    .await
            }
        };
        self.issued(&who, answer, &seen)
    }
    /// Revokes a token at the provider (RFC 7009), where it has a revocation endpoint.
    /// `Ok(false)` when it has none. Sent with our own client: the oauth2 crate refuses
    /// plain-http endpoints, which loopback test servers and overrides legitimately use.
    pub async fn revoke(
        &self,
        req: &FetchRequest<'_>,
        token: &Secret,
        is_refresh: bool,
    ) -> Result<bool, RefreshError> {
        let who = Who {
            account: req.account,
            provider: req.provider,
        };
        let ep = self.endpoints(req.http, &who).await?;
        let Some(url) = ep.revoke_url else {
            return Ok(false);
        };
        let hint = if is_refresh {
            "refresh_token"
        } else {
            "access_token"
        };
        let mut form = vec![("token", token.expose()), ("token_type_hint", hint)];
        let mut request = req.http.post(url);
        match (self.client_auth, req.client_secret) {
            (ClientAuth::Basic, Some(secret)) => {
                request = request.basic_auth(&self.client_id, Some(secret.expose()));
            }
            (ClientAuth::Post, Some(secret)) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret.expose()));
            }
            _ => form.push(("client_id", &self.client_id)),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| who.network(&e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(true);
        }
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let code = match self.dialect {
            Dialect::FitbitLegacy => fitbit_error_type(&body),
            Dialect::Standard => standard_error_code(&body),
        };
        Err(RefreshError::Http {
            account: who.account.clone(),
            provider: who.provider.to_owned(),
            status,
            code,
            retry_after,
        })
    }

    fn issued(
        &self,
        who: &Who<'_>,
        answer: Result<BasicTokenResponse, RequestTokenError<reqwest::Error, BasicErrorResponse>>,
        recording: &Mutex<Recording>,
    ) -> Result<Issued, RefreshError> {
        let (seen, body) = {
            let r = recording.lock().expect("poisoned");
            (r.seen, r.body.clone())
        };
        let success = (200..300).contains(&seen.status);
        match answer {
            Ok(token) => {
                let mut issued = issued_from(&token);
                issued.refresh_expires_at = lenient::parse(&body).and_then(|a| a.refresh_expires_at);
                Ok(issued)
            }
            Err(RequestTokenError::Parse(..) | RequestTokenError::Other(_)) if success => {
                // The crate is strict (types, content type, token_type); the provider may
                // have rotated the refresh token all the same, and it must not be lost.
                match lenient::parse(&body) {
                    Some(answer) => answer.into_issued().map_err(|rotated| RefreshError::BadAnswer {
                        account: who.account.clone(),
                        provider: who.provider.to_owned(),
                        what: "the token answer has no usable access token".to_owned(),
                        rotated,
                    }),
                    None => Err(who.bad_answer("the token answer is not a JSON object")),
                }
            }
            Err(RequestTokenError::Request(e)) => Err(who.network(&e)),
            Err(RequestTokenError::ServerResponse(r)) => {
                Err(self.classify(who, seen, Some(r.error().as_ref().to_owned())))
            }
            Err(RequestTokenError::Parse(_, body)) => {
                let code = match self.dialect {
                    Dialect::FitbitLegacy => fitbit_error_type(&body),
                    Dialect::Standard => None,
                };
                Err(self.classify(who, seen, code))
            }
            Err(RequestTokenError::Other(_)) => Err(self.classify(who, seen, None)),
        }
    }

    /// Turns an error answer into transient or permanent, by status first (410, 408, 429,
    /// 5xx), then by the OAuth error code.
    fn classify(&self, who: &Who<'_>, seen: Seen, code: Option<String>) -> RefreshError {
        let account = who.account.clone();
        let provider = who.provider.to_owned();
        if seen.status == 410 {
            let advice = self
                .gone_advice
                .clone()
                .unwrap_or_else(|| "the endpoint was turned off; update the config, then connect the account again".to_owned());
            return RefreshError::Gone {
                account,
                provider,
                advice,
            };
        }
        if matches!(seen.status, 408 | 425 | 429 | 500..=599) {
            return RefreshError::Http {
                account,
                provider,
                status: seen.status,
                code,
                retry_after: seen.retry_after,
            };
        }
        match code.as_deref() {
            Some("invalid_client" | "unauthorized_client") => RefreshError::BadClient {
                account,
                provider,
                code: code.unwrap_or_default(),
            },
            Some("temporarily_unavailable" | "server_error" | "slow_down") => {
                RefreshError::Provider {
                    account,
                    provider,
                    code: code.unwrap_or_default(),
                    message: None,
                    transient: true,
                    wait: seen.retry_after,
                }
            }
            Some(code) => RefreshError::Rejected {
                account,
                provider,
                code: code.to_owned(),
            },
            None => RefreshError::Http {
                account,
                provider,
                status: seen.status,
                code: None,
                retry_after: seen.retry_after,
            },
        }
    }
}

/// Legacy Fitbit's error envelope: the first `errorType`, if the body is that shape.
fn fitbit_error_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        error_type: String,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let code = envelope.errors.into_iter().next()?.error_type;
    // Quote only a code-shaped value: it ends up in messages and history.
    code.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        .then_some(code)
}

/// RFC 6749's `{"error": "..."}`, if the body is that shape and the code looks like one.
fn standard_error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: String,
    }
    let code = serde_json::from_slice::<Answer>(body).ok()?.error;
    code.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        .then_some(code)
}

/// Names for messages.
struct Who<'a> {
    account: &'a AccountName,
    provider: &'a str,
}

impl Who<'_> {
    fn setup(&self, what: &str) -> RefreshError {
        RefreshError::Setup {
            account: self.account.clone(),
            what: format!("{}: {what}", self.provider),
        }
    }
    fn network(&self, e: &reqwest::Error) -> RefreshError {
        RefreshError::Network {
            account: self.account.clone(),
            provider: self.provider.to_owned(),
            detail: network_detail(e),
        }
    }
    fn bad_answer(&self, what: &str) -> RefreshError {
        RefreshError::BadAnswer {
            account: self.account.clone(),
            provider: self.provider.to_owned(),
            what: what.to_owned(),
            rotated: None,
        }
    }
}

/// The oauth2 crate's HTTP client: our reqwest, remembering status and Retry-After.
fn recording_client(
    client: &reqwest::Client,
    seen: &Arc<Mutex<Recording>>,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>,
> {
    let client = client.clone();
    let seen = seen.clone();
    move |request: oauth2::HttpRequest| {
        let client = client.clone();
        let seen = seen.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let status = response.status();
            seen.lock().expect("poisoned").seen = Seen {
                status: status.as_u16(),
                retry_after: retry_after(response.headers()),
            };
            let mut builder = oauth2::http::Response::builder().status(status.as_u16());
            for (name, value) in response.headers() {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            let body = response.bytes().await?;
            seen.lock().expect("poisoned").body = body.to_vec();
            Ok(builder
                .body(body.to_vec())
                .expect("status and headers came from a valid response"))
        })
    }
}

/// A device authorization in progress (RFC 8628): what the user must do, and what the
/// polling needs.
pub struct DeviceStart {
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    pub expires_in: Duration,
    details: oauth2::StandardDeviceAuthorizationResponse,
}

impl OAuth2Spec {
    fn device_client(
        &self,
        ep: &Endpoints,
        secret: Option<&Secret>,
        who: &Who<'_>,
    ) -> Result<
        BasicClient<
            EndpointNotSet,
            oauth2::EndpointSet,
            EndpointNotSet,
            EndpointNotSet,
            oauth2::EndpointSet,
        >,
        RefreshError,
    > {
        let device = ep.device_auth_url.clone().ok_or_else(|| {
            who.setup("no device authorization endpoint: set `device_auth_url` (or an `issuer` that offers one)")
        })?;
        let token = ep
            .token_url
            .clone()
            .ok_or_else(|| who.setup("no token_url"))?;
        let mut client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_device_authorization_url(oauth2::DeviceAuthorizationUrl::from_url(device))
            .set_token_uri(TokenUrl::from_url(token))
            .set_auth_type(match self.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post | ClientAuth::None => AuthType::RequestBody,
            });
        if let (Some(secret), false) = (secret, self.client_auth == ClientAuth::None) {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        Ok(client)
    }

    /// Asks for a device code and the code the user types at the verification URL.
    pub async fn begin_device(&self, req: &FetchRequest<'_>) -> Result<DeviceStart, RefreshError> {
        let who = Who {
            account: req.account,
            provider: req.provider,
        };
        let ep = self.endpoints(req.http, &who).await?;
        let client = self.device_client(&ep, req.client_secret, &who)?;
        let seen = Arc::new(Mutex::new(Recording::default()));
        let http = recording_client(req.http, &seen);
        let mut request = client.exchange_device_code();
        for (key, value) in &self.auth_params {
            request = request.add_extra_param(key.clone(), value.clone());
        }
        let answer: Result<oauth2::StandardDeviceAuthorizationResponse, _> = request
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .request_async(&http)
            .await;
        let details = match answer {
            Ok(details) => details,
            Err(RequestTokenError::Request(e)) => return Err(who.network(&e)),
            Err(RequestTokenError::ServerResponse(r)) => {
                return Err(self.classify(
                    &who,
                    seen.lock().expect("poisoned").seen,
                    Some(r.error().as_ref().to_owned()),
                ))
            }
            Err(_) => {
                let seen = seen.lock().expect("poisoned").seen;
                if (200..300).contains(&seen.status) {
                    return Err(who
                        .bad_answer("the device authorization answer is not valid RFC 8628 JSON"));
                }
                return Err(self.classify(&who, seen, None));
            }
        };
        Ok(DeviceStart {
            verification_uri: details.verification_uri().to_string(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().to_string()),
            user_code: details.user_code().secret().to_string(),
            expires_in: details.expires_in(),
            details,
        })
    }

    /// Polls the token endpoint as RFC 8628 §3.5 says (interval, `slow_down` adds 5 s,
    /// `authorization_pending` waits) until the user approves, denies, or the code expires.
    pub async fn finish_device(
        &self,
        req: &FetchRequest<'_>,
        start: &DeviceStart,
    ) -> Result<Issued, RefreshError> {
        let who = Who {
            account: req.account,
            provider: req.provider,
        };
        let ep = self.endpoints(req.http, &who).await?;
        let client = self.device_client(&ep, req.client_secret, &who)?;
        let seen = Arc::new(Mutex::new(Recording::default()));
        let http = recording_client(req.http, &seen);
        let answer = client
            .exchange_device_access_token(&start.details)
            .request_async(&http, tokio::time::sleep, None)
            .await;
        match answer {
            Ok(token) => Ok(issued_from(&token)),
            Err(RequestTokenError::Request(e)) => Err(who.network(&e)),
            Err(RequestTokenError::ServerResponse(r)) => {
                let code = r.error().as_ref().to_owned();
                let what = match code.as_str() {
                    "expired_token" => "the device code expired before it was approved; run `connect --device` again",
                    "access_denied" => "the user denied the request",
                    _ => "the device authorization failed",
                };
                Err(RefreshError::Provider {
                    account: who.account.clone(),
                    provider: who.provider.to_owned(),
                    code,
                    message: Some(what.to_owned()),
                    transient: false,
                    wait: None,
                })
            }
            Err(_) => Err(self.classify(&who, seen.lock().expect("poisoned").seen, None)),
        }
    }
}

fn issued_from(token: &BasicTokenResponse) -> Issued {
    Issued {
        access: Secret::new(token.access_token().secret().clone()),
        refresh: token
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone())),
        token_type: match token.token_type() {
            BasicTokenType::Bearer => "Bearer".to_owned(),
            other => other.as_ref().to_owned(),
        },
        scope: token
            .scopes()
            .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
        expires_at: Issued::expires_in(token.expires_in().map(|d| d.as_secs())),
        refresh_expires_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitbit_envelope_yields_its_error_type() {
        let body = br#"{"errors":[{"errorType":"invalid_grant","message":"Refresh token invalid: abc"}],"success":false}"#;
        assert_eq!(fitbit_error_type(body).as_deref(), Some("invalid_grant"));
        assert_eq!(fitbit_error_type(b"<html>"), None);
        assert_eq!(
            fitbit_error_type(br#"{"errors":[{"errorType":"a b"}]}"#),
            None
        );
    }
}
