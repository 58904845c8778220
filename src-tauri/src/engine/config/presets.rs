//! Stage two for one account: a preset name plus overrides → the provider the engine runs.
//! Each preset says which keys it reads; any other key set on the account is an error.

use url::Url;

use super::error::Problem;
use super::fields::{http, oauth, ticket, wechat};
use super::raw::RawAccount;
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
    "mcp",
];

const COMMON: &[&str] = &[
    "depends_on",
    "refresh_before",
    "allow_insecure_http",
    "api_base",
    "token_in",
    "proxy_cookies",
    "refresh_token_lifetime",
    "git_hosts",
    "git_username",
    "probe_url",
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
/// A remote MCP server: its URL is enough (the authorization server is discovered and the
/// client registered); a client registered by hand may be named.
const MCP_KEYS: &[&str] = &[
    "url",
    "client_id",
    "scopes",
    "redirect_uri",
    "auth_params",
    "client_auth",
];
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

/// Resolves one account. `parent_base` is the `base_url` of the account it depends on, for
/// the WeChat ticket.
pub fn resolve(raw: &RawAccount, parent_base: Option<&Url>) -> Result<Provider, Problem> {
    let preset = raw.provider.get_ref().as_str();
    let allowed: Vec<&str> = match preset {
        "wechat" => WECHAT_KEYS.to_vec(),
        "wechat-jsapi-ticket" => TICKET_KEYS.to_vec(),
        "http" => HTTP_KEYS.to_vec(),
        "oidc" => [OAUTH_KEYS, &["issuer"]].concat(),
        "mcp" => MCP_KEYS.to_vec(),
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
