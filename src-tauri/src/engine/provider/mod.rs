//! Providers: how to get a new token from each kind of endpoint. One submodule per kind;
//! `Provider` matches and delegates. Providers touch neither engine state nor the keychain:
//! they take what they need in a [`FetchRequest`] and return an [`Issued`] token or a
//! classified [`RefreshError`].
//! * `oauth2`  RFC 6749 grants (authorization code + PKCE, refresh, client credentials);
//!   `oidc` discovery fills its endpoints
//! * `wechat`  WeChat `cgi-bin/token` / `stable_token`, and the jsapi ticket
//! * `http`    any token endpoint described in the config (TokenBoy style); `skew` reads
//!   its absolute expiry against the answer's `Date`, for providers whose clock is off

pub mod connects_with;
pub mod error;
pub mod http;
pub(super) mod lenient;
pub mod oauth2;
pub(super) mod skew;
pub mod wechat;

use std::collections::HashMap;

pub use connects_with::ConnectsWith;
pub use error::RefreshError;

use super::bounds;
use super::names::{AccountName, Deadline};
use super::secret::{Secret, TokenSet};

#[derive(Debug)]
pub enum Provider {
    OAuth2(Box<oauth2::OAuth2Spec>),
    WeChat(wechat::TokenSpec),
    WeChatTicket(wechat::TicketSpec),
    Http(http::HttpSpec),
}

/// Everything a provider may need for one fetch, gathered by the engine beforehand.
pub struct FetchRequest<'a> {
    pub account: &'a AccountName,
    /// The preset name, for messages.
    pub provider: &'a str,
    pub client_secret: Option<&'a Secret>,
    pub current: Option<&'a TokenSet>,
    /// Current access tokens of the accounts this one depends on.
    pub upstream: &'a HashMap<AccountName, Secret>,
    pub http: &'a reqwest::Client,
}

/// A token as a provider issued it. `refresh: None` means "no new refresh token": the
/// engine keeps the one it has (Google does not rotate).
pub struct Issued {
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub token_type: String,
    pub scope: Option<String>,
    pub expires: Expires,
    /// When the refresh token itself expires, where the answer says so.
    pub refresh_expires_at: Option<Deadline>,
}

/// When an issued token expires, as far as its provider said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expires {
    At(Deadline),
    /// The answer had no lifetime (GitHub OAuth apps, some `http` endpoints).
    Unstated,
}

impl Issued {
    /// The token set to store: a missing refresh token or scope means "unchanged" (Google
    /// does not rotate), so the current ones carry over. An unstated lifetime becomes an
    /// estimate, flagged as one: short when the token can be refreshed, so a token that
    /// really lives an hour is never served for a year.
    pub fn into_set(self, current: Option<&TokenSet>) -> TokenSet {
        let rotated = self.refresh.is_some();
        let refresh = self
            .refresh
            .or_else(|| current.and_then(|c| c.refresh.clone()));
        let now = crate::engine::clock::now();
        let (expires_at, expiry_estimated) = match self.expires {
            Expires::At(at) => (at, false),
            Expires::Unstated if refresh.is_some() => {
                (Deadline::after(now, bounds::ESTIMATED_LIFETIME), true)
            }
            Expires::Unstated => (Deadline::after(now, bounds::UNREFRESHABLE_LIFETIME), true),
        };
        TokenSet {
            access: self.access,
            refresh,
            token_type: self.token_type,
            scope: self.scope.or_else(|| current.and_then(|c| c.scope.clone())),
            expires_at: expires_at.whole_seconds(),
            obtained_at: Deadline::at(now).whole_seconds(),
            // A refresh token that carried over keeps its deadline; a new one has its own.
            refresh_expires_at: self.refresh_expires_at.or_else(|| {
                if rotated {
                    None
                } else {
                    current.and_then(|c| c.refresh_expires_at)
                }
            }),
            expiry_estimated,
        }
    }

    /// A new refresh token the provider gave no deadline for dies `lifetime` from now, when
    /// the account knows its lifetime (`refresh_token_lifetime`).
    pub fn with_refresh_lifetime(mut self, lifetime: Option<std::time::Duration>) -> Self {
        if let (Some(lifetime), Some(_), None) = (lifetime, &self.refresh, self.refresh_expires_at)
        {
            self.refresh_expires_at = Some(Deadline::after(crate::engine::clock::now(), lifetime));
        }
        self
    }

    /// `expires_in` as an answer gave it (seconds from now), bounded.
    pub fn expires_in(lifetime: Option<u64>) -> Expires {
        lifetime.map_or(Expires::Unstated, |secs| {
            Expires::At(Self::deadline_in(secs))
        })
    }

    /// A deadline `secs` from now, bounded (`refresh_token_expires_in` and the like).
    pub fn deadline_in(secs: u64) -> Deadline {
        Deadline::after(crate::engine::clock::now(), bounds::lifetime_secs(secs))
    }
}

impl Provider {
    /// Asks the endpoint for a new token.
    pub async fn fetch(&self, req: &FetchRequest<'_>) -> Result<Issued, RefreshError> {
        match self {
            Self::OAuth2(p) => p.refresh(req).await,
            Self::WeChat(p) => p.fetch(req).await,
            Self::WeChatTicket(p) => p.fetch(req).await,
            Self::Http(p) => p.fetch(req).await,
        }
    }

    /// Whether an answer of the account's own API (the proxy's) refuses the token it
    /// carried, beyond an HTTP 401 that every provider may send: WeChat says so inside a 200.
    pub fn refuses(&self, body: &[u8]) -> bool {
        match self {
            Self::WeChat(_) => wechat::refuses(body),
            // A ticket is not sent to an API as its access token, and the others say 401.
            Self::WeChatTicket(_) | Self::OAuth2(_) | Self::Http(_) => false,
        }
    }

    /// Whether the user must run a consent flow before the first token exists.
    pub fn needs_consent(&self) -> bool {
        matches!(self, Self::OAuth2(p) if p.grant != oauth2::GrantKind::ClientCredentials)
    }

    /// How the first token is obtained, for views.
    pub fn connects_with(&self) -> ConnectsWith {
        match self {
            Self::OAuth2(p) => match p.grant {
                oauth2::GrantKind::AuthorizationCode => ConnectsWith::Browser,
                oauth2::GrantKind::DeviceCode => ConnectsWith::Device,
                oauth2::GrantKind::ClientCredentials => ConnectsWith::None,
            },
            _ => ConnectsWith::None,
        }
    }

    /// Whether a client secret from the keychain is part of every fetch (for an MCP account
    /// that registered itself, the registration kept in the client-secret item).
    pub fn needs_secret(&self) -> bool {
        match self {
            Self::OAuth2(p) => p.registers() || p.client_auth != oauth2::ClientAuth::None,
            Self::WeChat(_) => true,
            Self::WeChatTicket(_) => false,
            Self::Http(p) => p.uses_secret(),
        }
    }

    /// The host (and port) its token endpoint is on: refreshes against one host are bounded
    /// together (`[refresh] per_host`). An `http` URL whose host is a template is its own
    /// host, as written.
    pub fn host(&self) -> String {
        let url = match self {
            Self::OAuth2(p) => p
                .endpoints
                .token_url
                .as_ref()
                .or(p.issuer.as_ref())
                .cloned(),
            Self::WeChat(p) => Some(p.base_url.clone()),
            Self::WeChatTicket(p) => Some(p.base_url.clone()),
            Self::Http(p) => url::Url::parse(&p.url).ok(),
        };
        let host = url
            .as_ref()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
        match (host, self) {
            (Some(host), _) => host,
            (None, Self::Http(p)) => p.url.split('/').take(3).collect::<Vec<_>>().join("/"),
            (None, _) => String::new(),
        }
    }

    /// The scheme, host and port tokens come from (for `doctor`'s clock check): the token
    /// endpoint, else the issuer or the MCP server.
    pub fn origin(&self) -> Option<url::Url> {
        let mut url = match self {
            Self::OAuth2(p) => p
                .endpoints
                .token_url
                .as_ref()
                .or(p.issuer.as_ref())
                .or(p.mcp.as_ref())
                .cloned(),
            Self::WeChat(p) => Some(p.base_url.clone()),
            Self::WeChatTicket(p) => Some(p.base_url.clone()),
            Self::Http(p) => url::Url::parse(&p.url).ok(),
        }?;
        url.set_path("/");
        url.set_query(None);
        url.set_fragment(None);
        Some(url)
    }

    /// Accounts whose tokens this one's fetch uses.
    pub fn upstream(&self) -> Vec<AccountName> {
        match self {
            Self::Http(p) => p.upstream(),
            _ => Vec::new(),
        }
    }
}

/// Why an endpoint may neither be handed to a browser nor sent a secret, if it may not:
/// anything but `https://`, or plain `http://` to this machine (to another one only when
/// the account says `allow_insecure_http = true`). A `file:`, `javascript:` or custom-scheme
/// URL would make the system's opener start another program with it.
pub fn endpoint_problem(url: &url::Url, insecure_http: bool) -> Option<&'static str> {
    match url.scheme() {
        "https" | "http" if url.host().is_none() => Some("has no host"),
        "https" => None,
        "http" if is_plain_remote_http(url) && !insecure_http => {
            Some("is plain http:// to another machine (only https://, or http:// to this machine, is used)")
        }
        "http" => None,
        _ => Some("is not an https:// address (only https://, or http:// to this machine, is used)"),
    }
}

/// Whether a front end may open or print `text`, a URL for the user's browser (a consent or
/// verification URL): the same rule as for endpoints, with a message saying why not.
pub fn openable(text: &str, insecure_http: bool) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("the URL for the browser is not a URL ({e}); it is neither opened nor shown")
    })?;
    match endpoint_problem(&url, insecure_http) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "the URL for the browser, {}, {problem}; it is neither opened nor shown",
            shown(&url)
        )),
    }
}

/// An endpoint as messages show it: without its query and fragment (a consent URL's query
/// holds its state and PKCE challenge).
pub fn shown(url: &url::Url) -> &str {
    &url[..url::Position::AfterPath]
}

/// Plain `http://` to anything but this machine: what secrets must not be sent over.
pub fn is_plain_remote_http(url: &url::Url) -> bool {
    let local = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    };
    url.scheme() == "http" && !local
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_https_and_loopback_http_endpoints_may_be_opened_or_sent_secrets() {
        let problem =
            |u: &str, insecure| super::endpoint_problem(&url::Url::parse(u).unwrap(), insecure);
        for fine in [
            "https://login.example.com/authorize",
            "http://127.0.0.1:9000/authorize",
            "http://[::1]/authorize",
            "http://localhost:8080/authorize",
        ] {
            assert_eq!(problem(fine, false), None, "{fine}");
        }
        for refused in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "ms-settings:privacy",
            "smb://server/share",
            "data:text/html,<script>alert(1)</script>",
            "http://login.example.com/authorize",
        ] {
            assert!(problem(refused, false).is_some(), "{refused}");
        }
        assert_eq!(
            problem("http://login.example.com/authorize", true),
            None,
            "opted in"
        );
        assert!(
            problem("file:///etc/passwd", true).is_some(),
            "never, opted in or not"
        );
        let consent = url::Url::parse("https://a.example/auth?state=s3cret#x").unwrap();
        assert_eq!(super::shown(&consent), "https://a.example/auth");
    }

    #[test]
    fn only_plain_http_off_this_machine_is_insecure() {
        let insecure = |u: &str| super::is_plain_remote_http(&url::Url::parse(u).unwrap());
        assert!(insecure("http://auth.example.com/token"));
        assert!(insecure("http://10.0.0.7/token"));
        assert!(insecure("http://127.0.0.1.example.com/token"));
        assert!(!insecure("https://auth.example.com/token"));
        assert!(!insecure("http://127.0.0.1:9000/token"));
        assert!(!insecure("http://127.8.9.10/token"));
        assert!(!insecure("http://[::1]:9000/token"));
        assert!(!insecure("http://localhost:9000/token"));
        assert!(!insecure("http://app.localhost/token"));
    }
}
