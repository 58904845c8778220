//! Stage one: the file as written. Every key is spanned so that stage two can point at it,
//! and unknown keys are errors (a typo must not silently fall back to a default).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub api: Option<RawApi>,
    pub refresh: Option<RawRefresh>,
    pub store: Option<RawStore>,
    pub metadata: Option<S<RawMetadata>>,
    #[serde(default)]
    pub account: Vec<S<RawAccount>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: Option<S<String>>,
    pub allow_remote: Option<bool>,
    pub max_connections: Option<S<i64>>,
    pub idle_timeout: Option<S<String>>,
    pub keyless_tokenboy: Option<S<Vec<String>>>,
    pub ask_first: Option<bool>,
    pub ask_timeout: Option<S<String>>,
    /// `[api.allow]`: executable path → account names (or `"*"`).
    pub allow: Option<S<BTreeMap<String, Vec<String>>>>,
}

/// `[metadata]`: a GCE-style metadata server for Google's client libraries.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetadata {
    pub listen: S<String>,
    pub account: S<String>,
    pub email: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub kind: Option<S<String>>,
    /// `kind = "redis"` only (see `fleet`).
    pub url: Option<S<String>>,
    pub key_file: Option<S<String>>,
    pub lease: Option<S<String>>,
    pub namespace: Option<S<String>>,
    pub host: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRefresh {
    pub retry_initial: Option<S<String>>,
    pub retry_max: Option<S<String>>,
    pub min_interval: Option<S<String>>,
    pub per_host: Option<S<i64>>,
    pub reconnect_warning: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub name: S<String>,
    pub provider: S<String>,
    pub client_id: Option<S<String>>,
    pub scopes: Option<S<Vec<String>>>,
    pub auth_url: Option<S<String>>,
    pub token_url: Option<S<String>>,
    pub revoke_url: Option<S<String>>,
    pub device_auth_url: Option<S<String>>,
    pub redirect_uri: Option<S<String>>,
    pub auth_params: Option<S<BTreeMap<String, String>>>,
    pub client_auth: Option<S<String>>,
    pub pkce: Option<S<bool>>,
    pub grant: Option<S<String>>,
    pub issuer: Option<S<String>>,
    pub tenant: Option<S<String>>,
    pub base_url: Option<S<String>>,
    pub endpoint: Option<S<String>>,
    pub depends_on: Option<S<String>>,
    pub url: Option<S<String>>,
    pub method: Option<S<String>>,
    pub query: Option<S<BTreeMap<String, String>>>,
    pub form: Option<S<BTreeMap<String, String>>>,
    pub json: Option<S<toml::Value>>,
    pub allow_insecure_http: Option<S<bool>>,
    pub headers: Option<S<BTreeMap<String, String>>>,
    pub token_field: Option<S<String>>,
    pub expires_in_field: Option<S<String>>,
    pub expires_at_field: Option<S<String>>,
    pub lifetime: Option<S<String>>,
    pub error_field: Option<S<String>>,
    pub refresh_before: Option<S<String>>,
    pub api_base: Option<S<String>>,
    pub token_in: Option<S<String>>,
    pub proxy_cookies: Option<S<bool>>,
    pub refresh_token_lifetime: Option<S<String>>,
    pub git_hosts: Option<S<Vec<String>>>,
    pub git_username: Option<S<String>>,
    pub probe_url: Option<S<String>>,
}

impl RawAccount {
    /// The keys that are set, with their spans: used to refuse keys a provider ignores.
    pub fn present_keys(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut keys = Vec::new();
        macro_rules! check {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { keys.push((stringify!($field), v.span())); } )* };
        }
        check!(
            client_id,
            scopes,
            auth_url,
            token_url,
            revoke_url,
            device_auth_url,
            redirect_uri,
            auth_params,
            client_auth,
            pkce,
            grant,
            issuer,
            tenant,
            base_url,
            endpoint,
            depends_on,
            url,
            method,
            query,
            form,
            json,
            headers,
            token_field,
            expires_in_field,
            expires_at_field,
            lifetime,
            error_field,
            refresh_before,
            allow_insecure_http,
            api_base,
            token_in,
            proxy_cookies,
            refresh_token_lifetime,
            git_hosts,
            git_username,
            probe_url
        );
        keys
    }
}

/// The `name` of the `[[account]]` table that contains a byte offset, for errors that serde
/// reports with a position but without knowing which account it is in.
pub fn account_at(text: &str, offset: usize) -> Option<String> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let accounts = doc.get_ref().get("account")?;
    let toml::de::DeValue::Array(items) = accounts.get_ref() else {
        return None;
    };
    items.iter().find_map(|item| {
        let toml::de::DeValue::Table(table) = item.get_ref() else {
            return None;
        };
        let inside = item.span().contains(&offset)
            || table
                .iter()
                .any(|(k, v)| k.span().contains(&offset) || v.span().contains(&offset));
        if !inside {
            return None;
        }
        match table.get("name").map(|v| v.get_ref()) {
            Some(toml::de::DeValue::String(name)) => Some(name.to_string()),
            _ => Some("(unnamed)".to_owned()),
        }
    })
}
