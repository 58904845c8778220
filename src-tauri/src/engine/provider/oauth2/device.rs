//! The device authorization grant (RFC 8628): a code the user types on another device,
//! then polling until they approve, deny, or the code expires.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, RequestTokenError, Scope, TokenUrl,
};

use super::answer::{issued_from, recording_client, seen as last_seen};
use super::{Call, ClientAuth, Endpoints, Identity, OAuth2Spec, Who};
use crate::engine::provider::error::code_shaped;
use crate::engine::provider::{FetchRequest, Issued, RefreshError};

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
        identity: &Identity,
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
        let mut client = BasicClient::new(ClientId::new(identity.id.clone()))
            .set_device_authorization_url(oauth2::DeviceAuthorizationUrl::from_url(device))
            .set_token_uri(TokenUrl::from_url(token))
            .set_auth_type(match identity.auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post | ClientAuth::None => AuthType::RequestBody,
            });
        if let (Some(secret), false) = (&identity.secret, identity.auth == ClientAuth::None) {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        Ok(client)
    }

    /// Asks for a device code and the code the user types at the verification URL.
    pub async fn begin_device(&self, req: &FetchRequest<'_>) -> Result<DeviceStart, RefreshError> {
        let Call {
            who,
            found,
            identity,
            seen,
        } = self.call(req).await?;
        let client = self.device_client(&found.endpoints, &identity, &who)?;
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
                    last_seen(&seen),
                    Some(code_shaped(r.error().as_ref())),
                ))
            }
            Err(_) => {
                let seen = last_seen(&seen);
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
        let Call {
            who,
            found,
            identity,
            seen,
        } = self.call(req).await?;
        let client = self.device_client(&found.endpoints, &identity, &who)?;
        let http = recording_client(req.http, &seen);
        let answer = client
            .exchange_device_access_token(&start.details)
            .request_async(&http, tokio::time::sleep, None)
            .await;
        match answer {
            Ok(token) => {
                let body = std::mem::take(&mut seen.lock().unwrap_or_else(|e| e.into_inner()).body);
                Ok(issued_from(&token, &body))
            }
            Err(RequestTokenError::Request(e)) => Err(who.network(&e)),
            Err(RequestTokenError::ServerResponse(r)) => {
                let code = code_shaped(r.error().as_ref());
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
            Err(_) => Err(self.classify(&who, last_seen(&seen), None)),
        }
    }
}
