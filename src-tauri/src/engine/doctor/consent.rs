//! Whether the provider takes the account's redirect: its consent page is asked for, as a
//! browser would be sent to it, without following it anywhere. A provider that does not know
//! the redirect answers 4xx there (Google's `redirect_uri_mismatch`, the fakes' "redirect_uri
//! mismatch"); one that knows it shows its login page or sends the browser on.

use serde::Serialize;
use url::Url;

use crate::engine::names::AccountName;
use crate::engine::provider::oauth2::{GrantKind, Redirect};
use crate::engine::provider::Provider;
use crate::engine::{Engine, EngineError};

/// What the provider answered to the consent page for the account's redirect.
#[derive(Clone, Debug, Serialize)]
pub struct ConsentProbe {
    pub redirect_uri: String,
    pub status: Option<u16>,
    /// The start of a refusal's body (an error page names what it refused).
    pub said: Option<String>,
    pub accepted: bool,
}

impl Engine {
    /// `Ok(None)` for an account without a browser consent, or one that registers its own
    /// client (an MCP server's).
    pub async fn probe_consent(
        &self,
        name: &AccountName,
    ) -> Result<Option<ConsentProbe>, EngineError> {
        let account = self.account(name)?;
        let Provider::OAuth2(spec) = &account.provider else {
            return Ok(None);
        };
        if spec.grant != GrantKind::AuthorizationCode || spec.registers() {
            return Ok(None);
        }
        let redirect = match &spec.redirect {
            Redirect::Exact(url) => url.clone(),
            // Any port will do for a provider that takes any loopback port.
            Redirect::AnyLoopbackPort => {
                Url::parse("http://127.0.0.1:8733/callback").expect("valid")
            }
        };
        let consent = spec
            .begin_consent(
                &self.shared.http,
                (name, &account.provider_name),
                None,
                &redirect,
            )
            .await?;
        let (status, said) = match self.shared.http.get(consent.url).send().await {
            Ok(answer) => {
                let status = answer.status().as_u16();
                let said = if status >= 400 {
                    let body = answer.bytes().await.unwrap_or_default();
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
                    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
                } else {
                    None
                };
                (Some(status), said)
            }
            Err(e) => (None, Some(crate::engine::net::network_detail(&e))),
        };
        Ok(Some(ConsentProbe {
            redirect_uri: redirect.to_string(),
            accepted: status.is_some_and(|s| s < 400),
            status,
            said,
        }))
    }
}
