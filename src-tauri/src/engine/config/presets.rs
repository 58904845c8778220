//! Stage two for one account: a preset name plus overrides → the provider the engine runs.
//! Each preset says which keys it reads; any other key set on the account is an error.

use url::Url;

use super::error::Problem;
use super::fields::{http, oauth, ticket, wechat};
use super::raw::RawAccount;
use crate::engine::provider::oauth2::{ClientAuth, Dialect};
use crate::engine::provider::Provider;

pub const PRESETS: &[&str] = &[
    "fitbit",
    "fitbit-legacy",
    "google",
    "microsoft",
    "github",
    "spotify",
    "strava",
    "oauth2",
    "oidc",
    "wechat",
    "wechat-jsapi-ticket",
    "http",
];

const COMMON: &[&str] = &[
    "depends_on",
    "refresh_before",
    "allow_insecure_http",
    "api_base",
    "token_in",
    "proxy_cookies",
    "refresh_token_lifetime",
];
const OAUTH_KEYS: &[&str] = &[
    "client_id",
    "scopes",
    "auth_url",
    "token_url",
    "revoke_url",
    "device_auth_url",
    "redirect_uri",
    "auth_params",
    "client_auth",
    "pkce",
    "grant",
];
const WECHAT_KEYS: &[&str] = &["client_id", "base_url", "endpoint"];
const TICKET_KEYS: &[&str] = &["base_url"];
const HTTP_KEYS: &[&str] = &[
    "url",
    "method",
    "query",
    "form",
    "json",
    "headers",
    "token_field",
    "expires_in_field",
    "expires_at_field",
    "lifetime",
    "error_field",
];

pub(super) const LEGACY_FITBIT_GONE: &str = "the legacy Fitbit Web API was turned off; Fitbit data is now served by the Google Health API: change this account to `provider = \"fitbit\"` with a Google OAuth client and googlehealth scopes, then connect it again";

/// Resolves one account. `parent_base` is the `base_url` of the account it depends on, for
/// the WeChat ticket.
pub fn resolve(raw: &RawAccount, parent_base: Option<&Url>) -> Result<Provider, Problem> {
    let preset = raw.provider.get_ref().as_str();
    let allowed: Vec<&str> = match preset {
        "wechat" => WECHAT_KEYS.to_vec(),
        "wechat-jsapi-ticket" => TICKET_KEYS.to_vec(),
        "http" => HTTP_KEYS.to_vec(),
        "oidc" => [OAUTH_KEYS, &["issuer"]].concat(),
        "microsoft" => [OAUTH_KEYS, &["tenant"]].concat(),
        p if PRESETS.contains(&p) => OAUTH_KEYS.to_vec(),
        other => {
            return Err(Problem::new(
                raw.provider.span(),
                Some("provider"),
                format!("unknown provider `{other}` (known: {})", PRESETS.join(", ")),
            ))
        }
    };
    for (key, span) in raw.present_keys() {
        if !allowed.contains(&key) && !COMMON.contains(&key) {
            return Err(Problem::new(
                span,
                Some(key),
                format!(
                    "provider `{preset}` does not use this key (it reads: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    match preset {
        "wechat" => wechat(raw),
        "wechat-jsapi-ticket" => ticket(raw, parent_base),
        "http" => http(raw),
        _ => oauth(raw, preset).map(|spec| Provider::OAuth2(Box::new(spec))),
    }
}

/// The preset's defaults for an OAuth provider, before overrides.
pub(super) struct OAuthPreset {
    pub auth: Option<&'static str>,
    pub token: Option<&'static str>,
    pub revoke: Option<&'static str>,
    pub client_auth: ClientAuth,
    pub params: &'static [(&'static str, &'static str)],
    pub separator: char,
    pub exact_redirect: bool,
    pub dialect: Dialect,
    pub scope_prefix: Option<(&'static str, &'static str)>,
}

const GOOGLE: OAuthPreset = OAuthPreset {
    auth: Some("https://accounts.google.com/o/oauth2/v2/auth"),
    token: Some("https://oauth2.googleapis.com/token"),
    revoke: Some("https://oauth2.googleapis.com/revoke"),
    client_auth: ClientAuth::Post,
    // A refresh token only with access_type=offline, reliably only with prompt=consent.
    params: &[("access_type", "offline"), ("prompt", "consent")],
    separator: ' ',
    exact_redirect: false,
    dialect: Dialect::Standard,
    scope_prefix: None,
};

pub(super) fn preset(name: &str) -> OAuthPreset {
    let plain = |auth, token, client_auth| OAuthPreset {
        auth: Some(auth),
        token: Some(token),
        revoke: None,
        client_auth,
        params: &[],
        separator: ' ',
        exact_redirect: false,
        dialect: Dialect::Standard,
        scope_prefix: None,
    };
    match name {
        "fitbit" => OAuthPreset {
            scope_prefix: Some(("googlehealth.", "https://www.googleapis.com/auth/")),
            ..GOOGLE
        },
        "google" => GOOGLE,
        "fitbit-legacy" => OAuthPreset {
            revoke: Some("https://api.fitbit.com/oauth2/revoke"),
            exact_redirect: true,
            dialect: Dialect::FitbitLegacy,
            ..plain(
                "https://www.fitbit.com/oauth2/authorize",
                "https://api.fitbit.com/oauth2/token",
                ClientAuth::Basic,
            )
        },
        "microsoft" => plain(
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
            ClientAuth::Post,
        ),
        "github" => plain(
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            ClientAuth::Post,
        ),
        "spotify" => plain(
            "https://accounts.spotify.com/authorize",
            "https://accounts.spotify.com/api/token",
            ClientAuth::Basic,
        ),
        "strava" => OAuthPreset {
            separator: ',',
            ..plain(
                "https://www.strava.com/oauth/authorize",
                "https://www.strava.com/oauth/token",
                ClientAuth::Post,
            )
        },
        _ => OAuthPreset {
            auth: None,
            token: None,
            revoke: None,
            client_auth: ClientAuth::Basic,
            params: &[],
            separator: ' ',
            exact_redirect: false,
            dialect: Dialect::Standard,
            scope_prefix: None,
        },
    }
}
