//! Each OAuth preset's defaults (endpoints, client authentication, dialect) before an
//! account's overrides: a table, read by the OAuth fields and by the preset list.

use crate::engine::provider::oauth2::{ClientAuth, Dialect};

pub(super) const LEGACY_FITBIT_GONE: &str = "the legacy Fitbit Web API was turned off; Fitbit data is now served by the Google Health API: change this account to `provider = \"fitbit\"` with a Google OAuth client and googlehealth scopes, then connect it again";

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
        // A public client (PKCE): a registration that gets a secret says so itself.
        "mcp" => OAuthPreset {
            auth: None,
            token: None,
            revoke: None,
            client_auth: ClientAuth::None,
            params: &[],
            separator: ' ',
            exact_redirect: false,
            dialect: Dialect::Standard,
            scope_prefix: None,
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
