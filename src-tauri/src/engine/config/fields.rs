//! Each provider kind's own fields: an account's raw table (after its preset's defaults) →
//! the provider spec the engine runs, with every value checked where it is written.

use std::time::Duration;

use url::Url;

use super::error::Problem;
use super::oauth_presets::{preset, LEGACY_FITBIT_GONE};
use super::raw::{RawAccount, S};
use crate::engine::names::parse_duration;
use crate::engine::provider::http::{Expiry, HttpSpec, Method};
use crate::engine::provider::oauth2::{
    ClientAuth, Dialect, Endpoints, GrantKind, OAuth2Spec, Redirect,
};
use crate::engine::provider::wechat::{Endpoint, TicketSpec, TokenSpec};
use crate::engine::provider::Provider;

pub(super) fn oauth(raw: &RawAccount, preset_name: &str) -> Result<OAuth2Spec, Problem> {
    let p = preset(preset_name);
    // A remote MCP server's own authorization server is found from its URL, and without a
    // `client_id` Tokenwarden registers itself there (an empty id until then).
    let mcp = if preset_name == "mcp" {
        Some(url(&raw.url, "url", raw)?.ok_or_else(|| {
            Problem::new(
                raw.provider.span(),
                Some("url"),
                "provider `mcp` needs `url`, the MCP server's endpoint, e.g. url = \"https://mcp.example.com/mcp\"",
            )
        })?)
    } else {
        None
    };
    let client_id = match (&mcp, &raw.client_id) {
        (Some(_), None) => String::new(),
        _ => required(
            &raw.client_id,
            raw,
            "client_id",
            "the OAuth client id registered with the provider",
        )?,
    };
    let tenant = raw
        .tenant
        .as_ref()
        .map_or("common", |t| t.get_ref().as_str());
    let default_url = |u: Option<&str>| {
        u.map(|u| Url::parse(&u.replace("{tenant}", tenant)).expect("preset URLs are valid"))
    };
    let issuer = url(&raw.issuer, "issuer", raw)?;
    if preset_name == "oidc" && issuer.is_none() {
        return Err(Problem::new(
            raw.provider.span(),
            Some("issuer"),
            "provider `oidc` needs `issuer`, e.g. issuer = \"https://accounts.example.com\"",
        ));
    }
    let endpoints = Endpoints {
        auth_url: url(&raw.auth_url, "auth_url", raw)?.or_else(|| default_url(p.auth)),
        token_url: url(&raw.token_url, "token_url", raw)?.or_else(|| default_url(p.token)),
        revoke_url: url(&raw.revoke_url, "revoke_url", raw)?.or_else(|| default_url(p.revoke)),
        device_auth_url: url(&raw.device_auth_url, "device_auth_url", raw)?,
    };
    if endpoints.token_url.is_none() && issuer.is_none() && mcp.is_none() {
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
    if grant == GrantKind::AuthorizationCode
        && endpoints.auth_url.is_none()
        && issuer.is_none()
        && mcp.is_none()
    {
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
    Ok(OAuth2Spec {
        client_id,
        grant,
        endpoints,
        issuer,
        mcp,
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
        insecure_http: raw
            .allow_insecure_http
            .as_ref()
            .is_some_and(|a| *a.get_ref()),
    })
}

pub(super) fn wechat(raw: &RawAccount) -> Result<Provider, Problem> {
    let appid = required(&raw.client_id, raw, "client_id", "the appid")?;
    let base_url = url(&raw.base_url, "base_url", raw)?
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

pub(super) fn ticket(raw: &RawAccount, parent_base: Option<&Url>) -> Result<Provider, Problem> {
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
    let base_url = match url(&raw.base_url, "base_url", raw)? {
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

pub(super) fn http(raw: &RawAccount) -> Result<Provider, Problem> {
    let url = required(&raw.url, raw, "url", "the token endpoint")?;
    let span = raw.url.as_ref().map(|u| u.span()).unwrap_or_default();
    match Url::parse(&url.replace("{{", "").replace("}}", "")) {
        Ok(parsed) => check_plain_http(&parsed, span, "url", raw)?,
        Err(_) => return Err(Problem::new(span, Some("url"), "not a URL")),
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
        (None, None, Some(l)) => Expiry::Fixed(duration_at_most(
            l,
            "lifetime",
            crate::engine::bounds::MAX_LIFETIME,
        )?),
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

/// An endpoint URL: http(s), and plain `http://` only to this machine unless the account
/// says `allow_insecure_http = true` (client secrets and refresh tokens would cross the
/// network readable by anyone on the path).
pub(super) fn url(
    value: &Option<S<String>>,
    key: &'static str,
    raw: &RawAccount,
) -> Result<Option<Url>, Problem> {
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
            check_plain_http(&parsed, v.span(), key, raw)?;
            Ok(parsed)
        })
        .transpose()
}

fn check_plain_http(
    url: &Url,
    span: std::ops::Range<usize>,
    key: &'static str,
    raw: &RawAccount,
) -> Result<(), Problem> {
    let allowed = raw
        .allow_insecure_http
        .as_ref()
        .is_some_and(|a| *a.get_ref());
    if allowed || !crate::engine::provider::is_plain_remote_http(url) {
        return Ok(());
    }
    Err(Problem::new(
        span,
        Some(key),
        "is plain http:// to another machine: the client secret and tokens would cross the network unencrypted. Use https://, or set `allow_insecure_http = true` in this account if that is really meant",
    ))
}

fn duration(value: &S<String>, key: &'static str) -> Result<Duration, Problem> {
    parse_duration(value.get_ref()).map_err(|e| Problem::new(value.span(), Some(key), e))
}

/// A duration no longer than `max` (a larger one is a mistake, not a wish to wait years).
pub fn duration_at_most(
    value: &S<String>,
    key: &'static str,
    max: Duration,
) -> Result<Duration, Problem> {
    let d = duration(value, key)?;
    if d > max {
        return Err(Problem::new(
            value.span(),
            Some(key),
            format!(
                "`{}` is too long; at most {}",
                value.get_ref().trim(),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}
