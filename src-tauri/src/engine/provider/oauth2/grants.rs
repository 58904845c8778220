//! The grants an account's token comes from: the consent URL, the code exchange, refresh
//! (or client credentials again), and revocation.

use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RefreshToken, Scope,
};
use url::Url;

use super::answer::{fitbit_error_type, recording_client, standard_error_code};
use super::{Call, ClientAuth, Consent, Dialect, GrantKind, OAuth2Spec, Who};
use crate::engine::names::AccountName;
use crate::engine::provider::error::retry_after;
use crate::engine::provider::{FetchRequest, Issued, RefreshError};
use crate::engine::secret::Secret;

impl OAuth2Spec {
    /// Builds the authorization URL for a consent flow that will be redirected to `redirect`.
    /// `secret` is the client-secret item, which holds the registration of an MCP account.
    pub async fn begin_consent(
        &self,
        http: &reqwest::Client,
        who: (&AccountName, &str),
        secret: Option<&Secret>,
        redirect: &Url,
    ) -> Result<Consent, RefreshError> {
        let who = Who {
            account: who.0,
            provider: who.1,
        };
        let found = self.endpoints(http, &who).await?;
        if found.endpoints.auth_url.is_none() {
            return Err(who.setup("no auth_url: set `auth_url` (or `issuer`) in the config"));
        }
        let identity = self.identity(secret, &who)?;
        let client = self.client(&found.endpoints, &identity, Some(redirect));
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .map_err(|e| who.setup(&e.to_string()))?;
        let scopes = self.scopes_for(&found);
        if self.scope_separator == ' ' {
            request = request.add_scopes(scopes.iter().cloned().map(Scope::new));
        } else if !scopes.is_empty() {
            request =
                request.add_extra_param("scope", scopes.join(&self.scope_separator.to_string()));
        }
        for (key, value) in &self.auth_params {
            request = request.add_extra_param(key.clone(), value.clone());
        }
        if let Some(resource) = &found.resource {
            request = request.add_extra_param("resource", resource.as_str());
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
        let Call {
            who,
            found,
            identity,
            seen,
        } = self.call(req).await?;
        let client = self.client(&found.endpoints, &identity, Some(redirect));
        let http = recording_client(req.http, &seen);
        let mut exchange = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| who.setup(&e.to_string()))?;
        if let Some(verifier) = verifier {
            exchange = exchange.set_pkce_verifier(verifier);
        }
        if let Some(resource) = &found.resource {
            exchange = exchange.add_extra_param("resource", resource.as_str());
        }
        let answer = exchange.request_async(&http).await;
        self.issued(&who, answer, &seen)
    }

    /// Gets a new access token: refresh_token grant, or client credentials again.
    pub async fn refresh(&self, req: &FetchRequest<'_>) -> Result<Issued, RefreshError> {
        let Call {
            who,
            found,
            identity,
            seen,
        } = self.call(req).await?;
        let client = self.client(&found.endpoints, &identity, None);
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
                let mut request = client
                    .exchange_refresh_token(&token)
                    .map_err(|e| who.setup(&e.to_string()))?;
                // RFC 8707 §2.2: the token is for this resource too (MCP requires it).
                if let Some(resource) = &found.resource {
                    request = request.add_extra_param("resource", resource.as_str());
                }
                request.request_async(&http).await
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
        let Call {
            who,
            found,
            identity,
            ..
        } = self.call(req).await?;
        let Some(url) = found.endpoints.revoke_url else {
            return Ok(false);
        };
        let hint = if is_refresh {
            "refresh_token"
        } else {
            "access_token"
        };
        let mut form = vec![("token", token.expose()), ("token_type_hint", hint)];
        let mut request = req.http.post(url);
        match (identity.auth, &identity.secret) {
            (ClientAuth::Basic, Some(secret)) => {
                request = request.basic_auth(&identity.id, Some(secret.expose()));
            }
            (ClientAuth::Post, Some(secret)) => {
                form.push(("client_id", &identity.id));
                form.push(("client_secret", secret.expose()));
            }
            _ => form.push(("client_id", &identity.id)),
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
        let body = crate::engine::provider::error::read_limited(response)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
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
}
