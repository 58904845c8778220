//! OpenID Connect discovery: an `oidc` account names its `issuer`, and the endpoints come
//! from `{issuer}/.well-known/openid-configuration` (fetched once per loaded config: a reload fetches it again). After
//! that it is an OAuth 2.0 account. Written by hand: four URLs from one JSON document do
//! not justify the `openidconnect` crate's ID-token machinery.

use url::Url;

use super::Endpoints;
use super::RefreshError;
use crate::engine::names::AccountName;

#[derive(serde::Deserialize)]
struct Discovery {
    authorization_endpoint: Option<Url>,
    token_endpoint: Option<Url>,
    revocation_endpoint: Option<Url>,
    device_authorization_endpoint: Option<Url>,
}

pub async fn discover(
    http: &reqwest::Client,
    issuer: &Url,
    account: &AccountName,
    provider: &str,
    insecure_http: bool,
) -> Result<Endpoints, RefreshError> {
    let url = discovery_url(issuer);
    let fail = |what: String| RefreshError::bad_answer(account, provider, what);
    let response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| RefreshError::network(account, provider, &e))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(RefreshError::Http {
            account: account.clone(),
            provider: provider.to_owned(),
            status,
            code: Some("discovery".into()),
            retry_after: crate::engine::provider::error::retry_after(response.headers()),
        });
    }
    let body = crate::engine::provider::error::read_body(response, account, provider).await?;
    let doc: Discovery = serde_json::from_slice(&body)
        .map_err(|_| fail(format!("{url} is not an OpenID Connect discovery document")))?;
    if doc.token_endpoint.is_none() {
        return Err(fail(format!("{url} names no token_endpoint")));
    }
    // The browser opens the authorization endpoint and secrets go to the others: each must
    // be https (plain http to this machine, or anywhere if the account allows it).
    let endpoints = [
        ("authorization_endpoint", &doc.authorization_endpoint),
        ("token_endpoint", &doc.token_endpoint),
        ("revocation_endpoint", &doc.revocation_endpoint),
        (
            "device_authorization_endpoint",
            &doc.device_authorization_endpoint,
        ),
    ];
    for (field, endpoint) in endpoints {
        let Some(endpoint) = endpoint else { continue };
        if let Some(problem) = crate::engine::provider::endpoint_problem(endpoint, insecure_http) {
            return Err(fail(format!(
                "{url} names {field} {}, which {problem}; refused",
                crate::engine::provider::shown(endpoint)
            )));
        }
    }
    Ok(Endpoints {
        auth_url: doc.authorization_endpoint,
        token_url: doc.token_endpoint,
        revoke_url: doc.revocation_endpoint,
        device_auth_url: doc.device_authorization_endpoint,
    })
}

/// RFC 8414 §5 / OIDC Discovery §4: the well-known path is appended to the issuer's path.
pub fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    #[test]
    fn discovery_url_keeps_the_issuer_path() {
        let issuer = url::Url::parse("https://login.example.com/tenant/v2.0/").unwrap();
        assert_eq!(
            super::discovery_url(&issuer).as_str(),
            "https://login.example.com/tenant/v2.0/.well-known/openid-configuration"
        );
    }
}
