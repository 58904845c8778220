//! Whether an account's token works: one harmless call to its API with it (`probe_url`, or
//! the preset's "who am I"), and, when it is refused, the scopes asked and granted and any
//! asked scope that names another site than the API's (a Google scope for a Microsoft API,
//! `outlook.office.com` for `outlook.office365.com`: pizauth#58).

use std::time::Duration;

use serde::Serialize;

use crate::engine::config::proxy_target::TokenIn;
use crate::engine::names::AccountName;
use crate::engine::provider::Provider;
use crate::engine::{Engine, EngineError};

#[derive(Clone, Debug, Serialize)]
pub struct TokenProbe {
    /// The call, without a query (which may carry the token).
    pub url: String,
    pub status: Option<u16>,
    pub works: bool,
    /// The network failure, or the provider's refusal inside a 200 (WeChat's `errcode`).
    pub error: Option<String>,
    pub scopes_asked: Vec<String>,
    /// What the provider said it granted (`scope` of the token answer), if it said.
    pub scopes_granted: Option<Vec<String>>,
    /// Asked scopes that are URLs on another site than the API's: (scope, its host).
    pub foreign_scopes: Vec<(String, String)>,
}

impl Engine {
    /// Calls the account's probe with its current token; `Ok(None)` for an account with no
    /// call to probe with (no API, or a preset without a harmless one and no `probe_url`).
    pub async fn probe_token(&self, name: &AccountName) -> Result<Option<TokenProbe>, EngineError> {
        let account = self.account(name)?;
        let Some((target, probe)) = account
            .proxy
            .as_ref()
            .and_then(|t| Some((t, t.probe.clone()?)))
        else {
            return Ok(None);
        };
        let token = self.token(name, Duration::ZERO).await?;
        let mut shown = probe.clone();
        shown.set_query(None);
        let request = match &target.token_in {
            TokenIn::Header => self
                .shared
                .http
                .get(probe)
                .bearer_auth(token.access_token.expose()),
            TokenIn::Query(param) => {
                let mut url = probe;
                url.query_pairs_mut()
                    .append_pair(param, token.access_token.expose());
                self.shared.http.get(url)
            }
        };
        let (status, works, error) = match request.send().await {
            Ok(answer) => {
                let status = answer.status();
                let body = answer.bytes().await.unwrap_or_default();
                let refused = account.provider.refuses(&body);
                let error = refused.then(|| {
                    format!(
                        "refused inside a 200: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )
                });
                (
                    Some(status.as_u16()),
                    status.is_success() && !refused,
                    error,
                )
            }
            Err(e) => (None, false, Some(crate::engine::net::network_detail(&e))),
        };
        let scopes_asked = match &account.provider {
            Provider::OAuth2(spec) => spec.scopes.clone(),
            _ => Vec::new(),
        };
        let site_of_api = shown.host_str().map(site).unwrap_or_default();
        let foreign_scopes = scopes_asked
            .iter()
            .filter_map(|scope| {
                let host = url::Url::parse(scope).ok()?.host_str()?.to_owned();
                (site(&host) != site_of_api).then(|| (scope.clone(), host))
            })
            .collect();
        Ok(Some(TokenProbe {
            url: shown.to_string(),
            status,
            works,
            error,
            scopes_asked,
            scopes_granted: token
                .scope
                .as_deref()
                .map(|s| s.split_whitespace().map(str::to_owned).collect()),
            foreign_scopes,
        }))
    }
}

/// The last two labels of a host name ("googleapis.com"), or an address as it is: close
/// enough to tell one provider's site from another's without a public-suffix list.
fn site(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host.to_owned();
    }
    let labels: Vec<&str> = host.rsplitn(3, '.').collect();
    match labels.as_slice() {
        [tld, domain, ..] => format!("{domain}.{tld}"),
        _ => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::site;

    #[test]
    fn a_site_is_the_last_two_labels_or_the_address() {
        assert_eq!(site("www.googleapis.com"), site("health.googleapis.com"));
        assert_ne!(site("outlook.office.com"), site("outlook.office365.com"));
        assert_eq!(site("127.0.0.1"), "127.0.0.1");
        assert_eq!(site("localhost"), "localhost");
    }
}
