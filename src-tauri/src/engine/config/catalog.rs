//! What the window's "Add account" shows about each preset: a label, the few fields it asks
//! for, scope suggestions, and what to register at the provider. Descriptive only: the
//! resolving rules stay in `presets` and `fields`.

use serde::Serialize;

use crate::engine::provider::ConnectsWith;

#[derive(Clone, Debug, Serialize)]
pub struct PresetInfo {
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub connects_with: ConnectsWith,
    pub needs_secret: bool,
    /// Which form fields it asks for (config keys), in order.
    pub fields: &'static [&'static str],
    pub scope_suggestions: &'static [&'static str],
    pub default_scopes: &'static [&'static str],
    /// The redirect URL to register at the provider.
    pub redirect_hint: Option<&'static str>,
    /// What else to do at the provider, in a sentence or two.
    pub setup: Option<&'static str>,
}

/// Providers that accept a loopback redirect on any port (RFC 8252): Tokenwarden listens on
/// a free port of 127.0.0.1 for the moment of the consent.
const LOOPBACK_ANY_PORT: &str = "http://127.0.0.1 (loopback, any port)";

const fn oauth(
    id: &'static str,
    label: &'static str,
    description: &'static str,
    scope_suggestions: &'static [&'static str],
    default_scopes: &'static [&'static str],
    redirect_hint: &'static str,
    setup: Option<&'static str>,
) -> PresetInfo {
    PresetInfo {
        id,
        label,
        description,
        connects_with: ConnectsWith::Browser,
        needs_secret: true,
        fields: &["client_id", "scopes"],
        scope_suggestions,
        default_scopes,
        redirect_hint: Some(redirect_hint),
        setup,
    }
}

/// Every preset, Fitbit first.
pub fn catalog() -> Vec<PresetInfo> {
    vec![
        oauth(
            "fitbit",
            "Fitbit",
            "Fitbit data through the Google Health API (Google OAuth).",
            &[
                "googlehealth.activity_and_fitness.readonly",
                "googlehealth.sleep.readonly",
                "googlehealth.heart_rate.readonly",
                "googlehealth.body_measurements.readonly",
            ],
            &["googlehealth.activity_and_fitness.readonly", "googlehealth.sleep.readonly"],
            LOOPBACK_ANY_PORT,
            Some("In the Google Cloud console, enable the Google Health API and create an OAuth client of type \"Desktop app\" (it accepts the loopback redirect). While the app is in \"Testing\", add yourself as a test user; its refresh tokens then expire after 7 days."),
        ),
        PresetInfo {
            fields: &["client_id", "redirect_uri", "scopes"],
            ..oauth(
                "fitbit-legacy",
                "Fitbit (legacy Web API)",
                "The retired Fitbit Web API; existing apps only.",
                &["activity", "heartrate", "sleep", "profile", "weight"],
                &["activity", "sleep"],
                "http://127.0.0.1:8733/callback",
                Some("Fitbit matches the redirect URL exactly: register this one at dev.fitbit.com and enter the same one below."),
            )
        },
        oauth(
            "google",
            "Google",
            "Any Google API with a Desktop app OAuth client.",
            &["openid", "email", "profile", "https://www.googleapis.com/auth/drive.readonly"],
            &["openid", "email"],
            LOOPBACK_ANY_PORT,
            Some("Create an OAuth client of type \"Desktop app\" in the Google Cloud console."),
        ),
        oauth(
            "microsoft",
            "Microsoft",
            "Microsoft identity platform (Graph, Outlook, …).",
            &["offline_access", "User.Read", "Mail.Read", "Calendars.Read"],
            &["offline_access", "User.Read"],
            "http://localhost",
            Some("In the app registration, add a \"Mobile and desktop applications\" platform with this redirect URI."),
        ),
        oauth(
            "github",
            "GitHub",
            "A GitHub OAuth app or GitHub App user token.",
            &["repo", "read:user", "read:org", "gist"],
            &["read:user"],
            "http://127.0.0.1",
            Some("Set it as the OAuth app's callback URL; GitHub accepts any loopback port."),
        ),
        oauth(
            "spotify",
            "Spotify",
            "The Spotify Web API.",
            &["user-read-email", "user-read-private", "playlist-read-private", "user-top-read"],
            &["user-read-email"],
            LOOPBACK_ANY_PORT,
            None,
        ),
        oauth(
            "strava",
            "Strava",
            "The Strava API.",
            &["read", "activity:read", "activity:read_all", "profile:read_all"],
            &["read", "activity:read"],
            "127.0.0.1",
            Some("Set it as the app's Authorization Callback Domain."),
        ),
        PresetInfo {
            id: "wechat",
            label: "WeChat",
            description: "A WeChat Official Account access_token (appid + appsecret).",
            connects_with: ConnectsWith::None,
            needs_secret: true,
            fields: &["client_id", "base_url"],
            scope_suggestions: &[],
            default_scopes: &[],
            redirect_hint: None,
            setup: Some("The client id is the appid and the secret the appsecret. Add this machine's public IP to the account's IP whitelist in the WeChat console (error 40164 otherwise)."),
        },
        PresetInfo {
            id: "wechat-jsapi-ticket",
            label: "WeChat jsapi ticket",
            description: "The jsapi_ticket fetched with a WeChat account's access token.",
            connects_with: ConnectsWith::None,
            needs_secret: false,
            fields: &["depends_on"],
            scope_suggestions: &[],
            default_scopes: &[],
            redirect_hint: None,
            setup: Some("Name the WeChat account whose access token fetches the ticket; it is refreshed whenever that token changes."),
        },
        PresetInfo {
            fields: &["client_id", "auth_url", "token_url", "scopes"],
            ..oauth(
                "oauth2",
                "Generic OAuth 2.0",
                "Any provider with an authorization and a token endpoint.",
                &[],
                &[],
                LOOPBACK_ANY_PORT,
                None,
            )
        },
        PresetInfo {
            fields: &["client_id", "issuer", "scopes"],
            ..oauth(
                "oidc",
                "OpenID Connect issuer",
                "Endpoints discovered from the issuer's /.well-known/openid-configuration.",
                &["openid", "email", "profile", "offline_access"],
                &["openid", "offline_access"],
                LOOPBACK_ANY_PORT,
                None,
            )
        },
        PresetInfo {
            id: "mcp",
            label: "Remote MCP server",
            description: "An AI agent's remote MCP server: its URL is enough. Tokenwarden finds its authorization server and registers itself there.",
            connects_with: ConnectsWith::Browser,
            needs_secret: false,
            fields: &["url"],
            scope_suggestions: &[],
            default_scopes: &[],
            redirect_hint: None,
            setup: Some("Connect it, then give the agent {\"command\": \"tokenwarden\", \"args\": [\"mcp\", \"NAME\"]} instead of the URL."),
        },
        PresetInfo {
            id: "http",
            label: "Custom HTTP",
            description: "Any token endpoint that answers JSON with access_token and expires_in (more options in the config file).",
            connects_with: ConnectsWith::None,
            needs_secret: false,
            fields: &["url"],
            scope_suggestions: &[],
            default_scopes: &[],
            redirect_hint: None,
            setup: Some("Headers, query parameters, the secret placeholder and field names are set in the config file."),
        },
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_preset_is_described_once_and_fitbit_comes_first() {
        let catalog = super::catalog();
        assert_eq!(catalog[0].id, "fitbit");
        let mut ids: Vec<_> = catalog.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        let mut presets = super::super::PRESETS.to_vec();
        presets.sort_unstable();
        assert_eq!(ids, presets);
    }
}
