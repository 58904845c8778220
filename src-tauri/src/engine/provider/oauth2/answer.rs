//! Reading what the token endpoint answered. The crate's HTTP client is a closure over our
//! reqwest that records the status, Retry-After and body, which the crate drops but
//! classification (and rescuing a rotated refresh token) needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::{BasicErrorResponse, BasicTokenResponse, BasicTokenType};
use oauth2::{RequestTokenError, TokenResponse};

use super::{Dialect, OAuth2Spec, Who};
use crate::engine::provider::error::{
    code_shaped, is_code_shaped, read_limited, retry_after, status_code, too_large,
};
use crate::engine::provider::{lenient, Issued, RefreshError};
use crate::engine::secret::Secret;

/// Status and Retry-After of the last answer, which `RequestTokenError` does not carry.
#[derive(Clone, Copy, Default)]
pub(super) struct Seen {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The body was larger than the limit and was not read.
    pub too_large: bool,
}

/// The last answer: what classification needs, and the body, so that a 2xx answer the
/// crate refuses can still give up the refresh token it carries.
#[derive(Default)]
pub(super) struct Recording {
    pub seen: Seen,
    pub body: Vec<u8>,
}

impl OAuth2Spec {
    pub(super) fn issued(
        &self,
        who: &Who<'_>,
        answer: Result<BasicTokenResponse, RequestTokenError<reqwest::Error, BasicErrorResponse>>,
        recording: &Mutex<Recording>,
    ) -> Result<Issued, RefreshError> {
        let (seen, body) = {
            let mut r = recording.lock().unwrap_or_else(|e| e.into_inner());
            (r.seen, std::mem::take(&mut r.body))
        };
        let success = (200..300).contains(&seen.status);
        if seen.too_large {
            return Err(who.bad_answer(&too_large()));
        }
        match answer {
            Ok(token) => Ok(issued_from(&token, &body)),
            Err(RequestTokenError::Parse(..) | RequestTokenError::Other(_)) if success => {
                // The crate is strict (types, content type, token_type); the provider may
                // have rotated the refresh token all the same, and it must not be lost.
                match lenient::parse(&body) {
                    Some(answer) => {
                        answer
                            .into_issued()
                            .map_err(|rotated| RefreshError::BadAnswer {
                                account: who.account.clone(),
                                provider: who.provider.to_owned(),
                                what: "the token answer has no usable access token".to_owned(),
                                rotated,
                            })
                    }
                    None => Err(who.bad_answer("the token answer is not a JSON object")),
                }
            }
            Err(RequestTokenError::Request(e)) => Err(who.network(&e)),
            Err(RequestTokenError::ServerResponse(r)) => {
                Err(self.classify(who, seen, Some(code_shaped(r.error().as_ref()))))
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
    pub(super) fn classify(&self, who: &Who<'_>, seen: Seen, code: Option<String>) -> RefreshError {
        if seen.too_large {
            return who.bad_answer(&too_large());
        }
        let account = who.account.clone();
        let provider = who.provider.to_owned();
        if seen.status == 410 {
            let advice = self.gone_advice.clone().unwrap_or_else(|| {
                "the endpoint was turned off; update the config, then connect the account again"
                    .to_owned()
            });
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
                code: status_code(seen.status),
                retry_after: seen.retry_after,
            },
        }
    }
}

/// Legacy Fitbit's error envelope: the first `errorType`, if the body is that shape.
pub(super) fn fitbit_error_type(body: &[u8]) -> Option<String> {
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
    Some(code).filter(|c| is_code_shaped(c))
}

/// RFC 6749's `{"error": "..."}`, if the body is that shape and the code looks like one.
pub(super) fn standard_error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: String,
    }
    let code = serde_json::from_slice::<Answer>(body).ok()?.error;
    Some(code).filter(|c| is_code_shaped(c))
}

/// The oauth2 crate's HTTP client: our reqwest, remembering status and Retry-After.
pub(super) fn recording_client(
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
            let retry_after = retry_after(response.headers());
            let mut builder = oauth2::http::Response::builder().status(status.as_u16());
            for (name, value) in response.headers() {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            let body = read_limited(response).await?;
            let mut recording = seen.lock().unwrap_or_else(|e| e.into_inner());
            recording.seen = Seen {
                status: status.as_u16(),
                retry_after,
                too_large: body.is_none(),
            };
            recording.body = body.unwrap_or_default();
            Ok(builder
                .body(recording.body.clone())
                .expect("status and headers came from a valid response"))
        })
    }
}

/// The status of the last answer (a poisoned lock still holds it).
pub(super) fn seen(recording: &Mutex<Recording>) -> Seen {
    recording.lock().unwrap_or_else(|e| e.into_inner()).seen
}

/// The token the crate read, and what it does not read (`refresh_token_expires_in`) from
/// the same `body`.
pub(super) fn issued_from(token: &BasicTokenResponse, body: &[u8]) -> Issued {
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
        expires: Issued::expires_in(token.expires_in().map(|d| d.as_secs())),
        refresh_expires_at: lenient::parse(body).and_then(|a| a.refresh_expires_at),
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
