//! Stage two for one account: a preset name plus overrides → the provider the engine runs.
//! Each preset says which keys it reads; any other key set on the account is an error.

use std::time::Duration;

use url::Url;

use super::error::Problem;
use super::raw::{RawAccount, S};
use crate::engine::names::{parse_duration, AccountName};
use crate::engine::provider::http::{Expiry, HttpSpec, Method};
use crate::engine::provider::oauth2::{
    ClientAuth, Dialect, Endpoints, GrantKind, OAuth2Spec, Redirect,
};
use crate::engine::provider::wechat::{Endpoint, TicketSpec, TokenSpec};
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

const COMMON: &[&str] = &["depends_on", "refresh_before"];
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

const LEGACY_FITBIT_GONE: &str = "the legacy Fitbit Web API was turned off; Fitbit data is now served by the Google Health API: change this account to `provider = \"fitbit\"` with a Google OAuth client and googlehealth scopes, then connect it again";

/// Resolves one account. `parent_base` is the `base_url` of the account it depends on, for
/// the WeChat ticket.
pub fn resolve(
    raw: &RawAccount,
    name: &AccountName,
    parent_base: Option<&Url>,
) -> Result<Provider, Problem> {
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
        _ => oauth(raw, name, preset).map(|spec| Provider::OAuth2(Box::new(spec))),
    }
}

/// The preset's defaults for an OAuth provider, before overrides.
struct OAuthPreset {
    auth: Option<&'static str>,
    token: Option<&'static str>,
    revoke: Option<&'static str>,
    client_auth: ClientAuth,
    params: &'static [(&'static str, &'static str)],
    separator: char,
    exact_redirect: bool,
    dialect: Dialect,
    scope_prefix: Option<(&'static str, &'static str)>,
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

fn preset(name: &str) -> OAuthPreset {
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

fn oauth(raw: &RawAccount, name: &AccountName, preset_name: &str) -> Result<OAuth2Spec, Problem> {
    let p = preset(preset_name);
    let client_id = required(
        &raw.client_id,
        raw,
        "client_id",
        "the OAuth client id registered with the provider",
    )?;
    let tenant = raw
        .tenant
        .as_ref()
        .map_or("common", |t| t.get_ref().as_str());
    let default_url = |u: Option<&str>| {
        u.map(|u| Url::parse(&u.replace("{tenant}", tenant)).expect("preset URLs are valid"))
    };
    let issuer = url(&raw.issuer, "issuer")?;
    if preset_name == "oidc" && issuer.is_none() {
        return Err(Problem::new(
            raw.provider.span(),
            Some("issuer"),
            "provider `oidc` needs `issuer`, e.g. issuer = \"https://accounts.example.com\"",
        ));
    }
    let endpoints = Endpoints {
        auth_url: url(&raw.auth_url, "auth_url")?.or_else(|| default_url(p.auth)),
        token_url: url(&raw.token_url, "token_url")?.or_else(|| default_url(p.token)),
        revoke_url: url(&raw.revoke_url, "revoke_url")?.or_else(|| default_url(p.revoke)),
        device_auth_url: url(&raw.device_auth_url, "device_auth_url")?,
    };
    if endpoints.token_url.is_none() && issuer.is_none() {
        return Err(Problem::new(
            raw.provider.span(),
            Some("token_url"),
            format!("provider `{preset_name}` needs `token_url`"),
        ));
    }
    let grant = match raw.grant.as_ref().map(|g| (g.get_ref().as_str(), g.span())) {
        None | Some(("authorization_code", _)) => GrantKind::AuthorizationCode,
        Some(("client_credentials", _)) => GrantKind::ClientCredentials,
        Some(("device_code", _)) => GrantKind::DeviceCode,
        Some((other, span)) => {
            return Err(Problem::new(span, Some("grant"), format!("unknown grant `{other}` (allowed: authorization_code, client_credentials, device_code)")))
        }
    };
    if grant == GrantKind::AuthorizationCode && endpoints.auth_url.is_none() && issuer.is_none() {
        return Err(Problem::new(
            raw.provider.span(),
            Some("auth_url"),
            "the authorization_code grant needs `auth_url`",
        ));
    }
    let client_auth = match raw
        .client_auth
        .as_ref()
        .map(|c| (c.get_ref().as_str(), c.span()))
    {
        None => p.client_auth,
        Some(("basic", _)) => ClientAuth::Basic,
        Some(("post", _)) => ClientAuth::Post,
        Some(("none", _)) => ClientAuth::None,
        Some((other, span)) => {
            return Err(Problem::new(
                span,
                Some("client_auth"),
                format!("unknown client_auth `{other}` (allowed: basic, post, none)"),
            ))
        }
    };
    let redirect = match &raw.redirect_uri {
        Some(uri) => {
            let parsed = Url::parse(uri.get_ref()).map_err(|e| Problem::new(uri.span(), Some("redirect_uri"), format!("not a URL: {e}")))?;
            let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if parsed.scheme() != "http" || !loopback || parsed.port().is_none() {
                return Err(Problem::new(
                    uri.span(),
                    Some("redirect_uri"),
                    "must be an http://127.0.0.1:PORT/… loopback address with an explicit port (Tokenwarden listens there for the redirect)",
                ));
            }
            Redirect::Exact(parsed)
        }
        None if p.exact_redirect && grant == GrantKind::AuthorizationCode => {
            return Err(Problem::new(
                raw.provider.span(),
                Some("redirect_uri"),
                format!("provider `{preset_name}` matches the redirect URI exactly: set redirect_uri = \"http://127.0.0.1:8733/callback\" and register that same URI with the provider"),
            ))
        }
        None => Redirect::AnyLoopbackPort,
    };
    let mut scopes: Vec<String> = raw
        .scopes
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_default();
    if let Some((short, prefix)) = p.scope_prefix {
        for scope in &mut scopes {
            if scope.starts_with(short) {
                *scope = format!("{prefix}{scope}");
            }
        }
    }
    if preset_name == "microsoft" && !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".into()); // without it Microsoft sends no refresh token
    }
    let mut auth_params: Vec<(String, String)> = p
        .params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in raw.auth_params.iter().flat_map(|m| m.get_ref()) {
        auth_params.retain(|(k, _)| k != key);
        auth_params.push((key.clone(), value.clone()));
    }
    let _ = name;
    Ok(OAuth2Spec {
        client_id,
        grant,
        endpoints,
        issuer,
        discovered: tokio::sync::OnceCell::new(),
        redirect,
        scopes,
        scope_separator: p.separator,
        auth_params,
        client_auth,
        // S256 is sent explicitly: legacy Fitbit would otherwise assume `plain`.
        pkce: raw.pkce.as_ref().is_none_or(|b| *b.get_ref()),
        dialect: p.dialect,
        gone_advice: (p.dialect == Dialect::FitbitLegacy).then(|| LEGACY_FITBIT_GONE.to_owned()),
    })
}

fn wechat(raw: &RawAccount) -> Result<Provider, Problem> {
    let appid = required(&raw.client_id, raw, "client_id", "the appid")?;
    let base_url = url(&raw.base_url, "base_url")?
        .unwrap_or_else(|| Url::parse("https://api.weixin.qq.com").expect("valid"));
    let endpoint = match raw
        .endpoint
        .as_ref()
        .map(|e| (e.get_ref().as_str(), e.span()))
    {
        None | Some(("token", _)) => Endpoint::Token,
        Some(("stable", _)) => Endpoint::Stable,
        Some((other, span)) => {
            return Err(Problem::new(
                span,
                Some("endpoint"),
                format!("unknown endpoint `{other}` (allowed: token, stable)"),
            ))
        }
    };
    Ok(Provider::WeChat(TokenSpec {
        appid,
        base_url,
        endpoint,
    }))
}

fn ticket(raw: &RawAccount, parent_base: Option<&Url>) -> Result<Provider, Problem> {
    let Some(parent) = &raw.depends_on else {
        return Err(Problem::new(
            raw.provider.span(),
            Some("depends_on"),
            "provider `wechat-jsapi-ticket` needs `depends_on` = the name of its `wechat` account",
        ));
    };
    let upstream =
        parent
            .get_ref()
            .parse()
            .map_err(|e: crate::engine::names::BadAccountName| {
                Problem::new(parent.span(), Some("depends_on"), e.to_string())
            })?;
    let base_url = match url(&raw.base_url, "base_url")? {
        Some(u) => u,
        None => parent_base
            .cloned()
            .unwrap_or_else(|| Url::parse("https://api.weixin.qq.com").expect("valid")),
    };
    Ok(Provider::WeChatTicket(TicketSpec {
        base_url,
        upstream,
        kind: "jsapi".into(),
    }))
}

fn http(raw: &RawAccount) -> Result<Provider, Problem> {
    let url = required(&raw.url, raw, "url", "the token endpoint")?;
    if Url::parse(&url.replace("{{", "").replace("}}", "")).is_err() {
        let span = raw.url.as_ref().map(|u| u.span()).unwrap_or_default();
        return Err(Problem::new(span, Some("url"), "not a URL"));
    }
    let method = match raw
        .method
        .as_ref()
        .map(|m| (m.get_ref().to_ascii_uppercase(), m.span()))
    {
        None => Method::Get,
        Some((m, _)) if m == "GET" => Method::Get,
        Some((m, _)) if m == "POST" => Method::Post,
        Some((m, span)) => {
            return Err(Problem::new(
                span,
                Some("method"),
                format!("unknown method `{m}` (allowed: GET, POST)"),
            ))
        }
    };
    if method == Method::Get && (raw.form.is_some() || raw.json.is_some()) {
        let span = raw
            .form
            .as_ref()
            .map(|f| f.span())
            .or(raw.json.as_ref().map(|j| j.span()))
            .unwrap_or_default();
        return Err(Problem::new(
            span,
            Some("method"),
            "a `form` or `json` body needs method = \"POST\"",
        ));
    }
    let pairs =
        |m: &Option<S<std::collections::BTreeMap<String, String>>>| -> Vec<(String, String)> {
            m.iter()
                .flat_map(|m| m.get_ref().iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect()
        };
    let json = match &raw.json {
        Some(v) => Some(
            serde_json::to_value(v.get_ref())
                .map_err(|e| Problem::new(v.span(), Some("json"), e.to_string()))?,
        ),
        None => None,
    };
    let expiry = match (&raw.expires_in_field, &raw.expires_at_field, &raw.lifetime) {
        (Some(f), None, None) => Expiry::InField(f.get_ref().clone()),
        (None, Some(f), None) => Expiry::AtField(f.get_ref().clone()),
        (None, None, Some(l)) => Expiry::Fixed(duration(l, "lifetime")?),
        (None, None, None) => Expiry::InField("expires_in".into()),
        _ => {
            return Err(Problem::new(
                raw.provider.span(),
                Some("expires_in_field"),
                "set only one of expires_in_field, expires_at_field, lifetime",
            ))
        }
    };
    Ok(Provider::Http(HttpSpec {
        url,
        method,
        query: pairs(&raw.query),
        form: pairs(&raw.form),
        json,
        headers: pairs(&raw.headers),
        token_field: raw
            .token_field
            .as_ref()
            .map_or_else(|| "access_token".into(), |f| f.get_ref().clone()),
        expiry,
        error_field: raw.error_field.as_ref().map(|f| f.get_ref().clone()),
    }))
}

fn required(
    value: &Option<S<String>>,
    raw: &RawAccount,
    key: &'static str,
    what: &str,
) -> Result<String, Problem> {
    match value {
        Some(v) if !v.get_ref().trim().is_empty() => Ok(v.get_ref().trim().to_owned()),
        Some(v) => Err(Problem::new(
            v.span(),
            Some(key),
            format!("is empty; set it to {what}"),
        )),
        None => Err(Problem::new(
            raw.provider.span(),
            Some(key),
            format!(
                "provider `{}` needs `{key}` ({what})",
                raw.provider.get_ref()
            ),
        )),
    }
}

fn url(value: &Option<S<String>>, key: &'static str) -> Result<Option<Url>, Problem> {
    value
        .as_ref()
        .map(|v| {
            let parsed = Url::parse(v.get_ref())
                .map_err(|e| Problem::new(v.span(), Some(key), format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Problem::new(
                    v.span(),
                    Some(key),
                    "must be an http:// or https:// URL",
                ));
            }
            Ok(parsed)
        })
        .transpose()
}

pub fn duration(value: &S<String>, key: &'static str) -> Result<Duration, Problem> {
    parse_duration(value.get_ref()).map_err(|e| Problem::new(value.span(), Some(key), e))
}
