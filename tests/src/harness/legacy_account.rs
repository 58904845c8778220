//! [`LegacyAccount`], the setup most tests start from: account `fb` on a legacy-Fitbit fake.

use super::{free_port, unix_now, Env};
use crate::fakes::oauth::{OAuthConfig, OAuthFake};

/// Account `fb` on a legacy-Fitbit [`OAuthFake`] of its own, the setup most tests start from.
///
/// [`LegacyAccount::start`] starts the fake (config [`OAuthConfig::fitbit_legacy`] with `fb`'s
/// redirect_uri, passed through `configure`), writes an [`Env`] whose `fb` table points at the
/// fake with `redirect_uri` on a port that was free (the one redirect the fake accepts), and
/// stores `fb`'s client secret. [`LegacyAccount::connected`] also seeds `fb`'s tokens.
/// [`Env::serve_with_new_key`] is the usual next step.
pub struct LegacyAccount {
    configure: Box<dyn FnOnce(OAuthConfig) -> OAuthConfig + Send>,
    /// Appended to `fb`'s table after its redirect_uri, each part on a line of its own.
    extra: String,
    /// Names of the never-connected accounts after `fb`.
    others: Vec<String>,
    /// The `[refresh]` table's lines, when not [`Env::new`]'s.
    refresh: Option<String>,
    /// The Windows build under wine ([`Env::windows`]) instead of this platform's.
    windows: bool,
}

impl LegacyAccount {
    /// `configure` gets the fake's default legacy config (8 h tokens) and returns the one to
    /// run, e.g. `|c| c.expires_in(3600)`.
    pub fn new(configure: impl FnOnce(OAuthConfig) -> OAuthConfig + Send + 'static) -> Self {
        Self {
            configure: Box::new(configure),
            extra: String::new(),
            others: Vec::new(),
            refresh: None,
            windows: false,
        }
    }

    /// Every command runs the Windows build under wine (see [`crate::wine`]).
    pub fn on_windows(mut self) -> Self {
        self.windows = true;
        self
    }

    /// TOML lines for the `[refresh]` table instead of `retry_initial = "1s"`.
    pub fn refresh_settings(mut self, lines: &str) -> Self {
        self.refresh = Some(lines.into());
        self
    }

    /// TOML lines for `fb`'s table after its redirect_uri (`refresh_before`, `scopes`, ...).
    pub fn extra(mut self, lines: &str) -> Self {
        self.extra.push('\n');
        self.extra.push_str(lines);
        self
    }

    /// Another `fitbit-legacy` account `name` on the same fake, after `fb`, with a redirect_uri
    /// of its own on a free port: configured but never connected, no client secret stored.
    pub fn another_account(mut self, name: &str) -> Self {
        self.others.push(name.into());
        self
    }

    /// The fake, and the environment with `fb`'s client secret stored (no tokens).
    pub async fn start(self) -> (OAuthFake, Env) {
        let redirect = format!("http://127.0.0.1:{}/callback", free_port());
        let config = (self.configure)(OAuthConfig::fitbit_legacy(&redirect));
        let fake = OAuthFake::start(config).await;
        let mut accounts = fake.account_toml(
            "fb",
            "fitbit-legacy",
            &format!("redirect_uri = \"{redirect}\"{}", self.extra),
        );
        for name in &self.others {
            let redirect = format!("http://127.0.0.1:{}/callback", free_port());
            accounts.push_str(&fake.account_toml(
                name,
                "fitbit-legacy",
                &format!("redirect_uri = \"{redirect}\""),
            ));
        }
        let mut env = match &self.refresh {
            Some(refresh) => Env::with_refresh(refresh, &accounts),
            None => Env::new(&accounts),
        };
        if self.windows {
            env.wine = Some(crate::wine::Wine::shared());
        }
        let secret = fake.lock().config.client_secret.clone();
        env.set_secret("fb", &secret).await;
        (fake, env)
    }

    /// [`LegacyAccount::start`], then `fb` connected: a grant from the fake
    /// ([`OAuthFake::issue_grant`]) stored as `tokens:fb`, expiring `left` seconds from now
    /// (negative: already expired). Returns the access token as well.
    pub async fn connected(self, left: i64) -> (OAuthFake, Env, String) {
        let (fake, env) = self.start().await;
        let (access, refresh) = fake.issue_grant();
        env.seed_tokens("fb", &access, &refresh, unix_now() + left)
            .await;
        (fake, env, access)
    }
}
