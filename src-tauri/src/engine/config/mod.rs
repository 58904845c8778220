//! Configuration: `config.toml` → resolved [`Config`]. Two stages: `raw` mirrors the file
//! (spanned, unknown keys refused), `presets` turns each account into a provider. Errors
//! carry file, line and column, account and key. Loading never writes, except to create a
//! missing file with commented examples.
//! * `raw`      the file as written           * `presets`  provider defaults and key rules
//! * `resolve`  raw → accounts, cycles refused    * `fields`   the providers' own fields
//! * `error`    located, one-line messages        * `example`  the commented file made at first run

pub mod catalog;
pub mod clients;
pub mod edit;
pub mod error;
mod example;
mod fields;
pub mod fleet;
mod oauth_presets;
mod presets;
pub mod proxy_target;
mod raw;
mod resolve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::ConfigError;
use error::{line_column, Located, Problem};
use example::create_example;
pub use example::EXAMPLE;
#[cfg(test)]
use presets::PRESETS;
use raw::RawConfig;
use resolve::resolve;

use super::names::AccountName;
use super::provider::Provider;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8732";

#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub api: ApiSettings,
    pub retry: RetrySettings,
    /// Refreshes in flight at once against one provider host (`[refresh] per_host`).
    pub per_host: usize,
    /// Where token sets and client secrets live (`[store] kind`).
    pub store: StoreKind,
    /// How to reach the Redis that several hosts share (`kind = "redis"` only).
    pub fleet: Option<fleet::FleetSettings>,
    /// How long before a refresh token stops working the user is told
    /// (`[refresh] reconnect_warning`).
    pub reconnect_warning: std::time::Duration,
    /// The GCE-style metadata server for Google's client libraries (`[metadata]`).
    pub metadata: Option<clients::MetadataSettings>,
    pub accounts: Vec<Arc<Account>>,
    /// Where each account is in `accounts`: a lookup must not scan ten thousand names.
    index: HashMap<AccountName, usize>,
}

#[derive(Clone, Debug)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub allow_remote: bool,
    /// Open connections served at once; the next ones are closed at once, so no client
    /// can use up the process's file descriptors (which refreshes and the keychain need).
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, and may sit idle
    /// between requests, before it is closed.
    pub idle_timeout: Duration,
    /// Accounts whose `GET /token?name=` is answered without a key, on loopback only
    /// (`keyless_tokenboy`, for TokenBoy clients that cannot send one).
    pub keyless_tokenboy: Vec<AccountName>,
}

/// Where token sets and client secrets live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// One OS keychain item per secret: the default, right for a desktop with a few accounts.
    #[default]
    Keychain,
    /// Sealed in a SQLite file in the data dir under one key kept in the keychain: for
    /// thousands of accounts.
    Database,
    /// Sealed in a Redis that several hosts share, one refresher per account among them.
    Redis,
}

impl StoreKind {
    /// The kinds `store migrate` moves between, by the name the config and the CLI use.
    pub const NAMES: [&'static str; 2] = ["keychain", "database"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keychain => "keychain",
            Self::Database => "database",
            Self::Redis => "redis",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Keychain, Self::Database, Self::Redis]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// How long before a refresh token stops working the user is told, unless
/// `[refresh] reconnect_warning` says.
pub const DEFAULT_RECONNECT_WARNING: Duration = Duration::from_secs(24 * 3600);

/// Refreshes in flight at once against one provider host, unless `[refresh] per_host` says.
pub const DEFAULT_PER_HOST: usize = 8;

impl ApiSettings {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
}

#[derive(Clone, Copy, Debug)]
pub struct RetrySettings {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug)]
pub struct Account {
    pub name: AccountName,
    /// The preset as written (`fitbit`, `wechat`, …), shown to users.
    pub provider_name: String,
    pub provider: Provider,
    /// Accounts whose tokens this one's fetch uses (`depends_on`, templates).
    pub upstream: Vec<AccountName>,
    pub schedule: Schedule,
    /// Where `/v1/proxy/{name}/…` goes; `None` when the account has no API to proxy to.
    pub proxy: Option<proxy_target::ProxyTarget>,
    /// How long a refresh token lives after it was issued, where the provider does not say
    /// (`refresh_token_lifetime`; Google apps in "Testing": 7 days).
    pub refresh_lifetime: Option<Duration>,
    /// The git remotes that take this account's token (`git_hosts`).
    pub git: Option<clients::GitSettings>,
}

/// When an account's token is refreshed: `refresh_before` its expiry (else the rule in
/// `timing::lead`), but never sooner than `min_interval` after it was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub refresh_before: Option<Duration>,
    pub min_interval: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            refresh_before: None,
            min_interval: crate::engine::bounds::MIN_REFRESH_INTERVAL,
        }
    }
}

impl Config {
    /// Reads and checks the file; creates it with commented examples if it does not exist.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_example(path)?;
                EXAMPLE.to_owned()
            }
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let locate = |p: Problem| {
            let (line, column) = line_column(text, p.span.start);
            let account = p.account.or_else(|| raw::account_at(text, p.span.start));
            ConfigError::Invalid(Box::new(Located {
                path: path.to_owned(),
                line,
                column,
                account,
                key: p.key.map(|k| k.into_owned()),
                message: p.message,
            }))
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let key = unknown_key(e.message());
            let mut problem = Problem::new(span, None, e.message().to_owned());
            problem.key = key;
            locate(problem)
        })?;
        resolve(raw).map_err(locate).map(|r| Config {
            path: path.to_owned(),
            api: r.api,
            retry: r.retry,
            per_host: r.per_host,
            store: r.store,
            fleet: r.fleet,
            reconnect_warning: r.reconnect_warning,
            metadata: r.metadata,
            index: r
                .accounts
                .iter()
                .enumerate()
                .map(|(i, a)| (a.name.clone(), i))
                .collect(),
            accounts: r.accounts,
        })
    }

    pub fn account(&self, name: &AccountName) -> Option<&Arc<Account>> {
        self.index.get(name).map(|&i| &self.accounts[i])
    }
}

/// serde says "unknown field `foo`, expected one of …"; pull out `foo` for the key slot.
fn unknown_key(message: &str) -> Option<std::borrow::Cow<'static, str>> {
    let rest = message.strip_prefix("unknown field `")?;
    let key = rest.split('`').next()?;
    Some(std::borrow::Cow::Owned(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("config.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn two_accounts_fetching_one_appid_on_the_token_endpoint_are_refused() {
        let table = |name: &str, extra: &str| {
            format!("[[account]]\nname = \"{name}\"\nprovider = \"wechat\"\nclient_id = \"wx1\"\n{extra}\n")
        };
        let err = parse(&(table("a", "") + &table("b", ""))).unwrap_err();
        assert!(
            err.starts_with("config.toml:9:"),
            "points at b's client_id: {err}"
        );
        assert!(
            err.contains("`wx1` is already fetched by account `a`"),
            "{err}"
        );
        // The stable endpoint hands both the same token: no conflict.
        let stable = "endpoint = \"stable\"";
        parse(&(table("a", stable) + &table("b", stable))).unwrap();
        parse(&(table("a", "") + &table("b", "").replace("wx1", "wx2"))).unwrap();
    }

    #[test]
    fn proxy_targets_come_from_the_preset_or_api_base() {
        let config = parse(
            r#"
[[account]]
name = "gh"
provider = "github"
client_id = "x"
[[account]]
name = "wx"
provider = "wechat"
client_id = "wx1"
[[account]]
name = "own"
provider = "oauth2"
client_id = "x"
token_url = "https://auth.example/token"
grant = "client_credentials"
api_base = "https://api.example/v2"
token_in = "query:key"
proxy_cookies = true
[[account]]
name = "none"
provider = "oauth2"
client_id = "x"
token_url = "https://auth.example/token"
grant = "client_credentials"
"#,
        )
        .unwrap();
        let target = |n: &str| config.account(&n.parse().unwrap()).unwrap().proxy.clone();
        let gh = target("gh").unwrap();
        assert_eq!(gh.base.as_str(), "https://api.github.com/");
        assert_eq!(gh.token_in, proxy_target::TokenIn::Header);
        let wx = target("wx").unwrap();
        assert_eq!(
            wx.token_in,
            proxy_target::TokenIn::Query("access_token".into())
        );
        assert!(wx.errcodes);
        let own = target("own").unwrap();
        assert_eq!(own.base.as_str(), "https://api.example/v2");
        assert_eq!(own.token_in, proxy_target::TokenIn::Query("key".into()));
        assert!(
            own.cookies && !gh.cookies && !wx.cookies,
            "cookies only when asked for"
        );
        assert_eq!(target("none"), None);
        let err = parse("[[account]]\nname = \"a\"\nprovider = \"oauth2\"\nclient_id = \"x\"\ntoken_url = \"https://auth.example/token\"\ngrant = \"client_credentials\"\nproxy_cookies = true\n").unwrap_err();
        assert!(
            err.contains("proxy_cookies") && err.contains("api_base"),
            "{err}"
        );
        let err = parse("[[account]]\nname = \"a\"\nprovider = \"github\"\nclient_id = \"x\"\napi_base = \"http://api.example\"\n").unwrap_err();
        assert!(
            err.contains("api_base") && err.contains("plain http"),
            "{err}"
        );
    }

    #[test]
    fn example_parses_to_nothing() {
        assert!(parse(EXAMPLE).unwrap().accounts.is_empty());
    }

    #[test]
    fn the_design_example_parses() {
        let text = r#"
[api]
listen = "127.0.0.1:8732"
[[account]]
name = "fitbit"
provider = "fitbit"
client_id = "1234-abc.apps.googleusercontent.com"
scopes = ["googlehealth.activity_and_fitness.readonly"]
[[account]]
name = "fitbit-old"
provider = "fitbit-legacy"
client_id = "22942C"
redirect_uri = "http://127.0.0.1:8733/callback"
[[account]]
name = "weixin"
provider = "wechat"
client_id = "wx1234567890"
base_url = "https://api.weixin.qq.com"
[[account]]
name = "weixin_jsticket"
provider = "wechat-jsapi-ticket"
depends_on = "weixin"
[[account]]
name = "custom"
provider = "http"
url = "https://api.example.com/token"
method = "GET"
query = { grant_type = "client_credential", appid = "abc", secret = "{{secret}}" }
token_field = "access_token"
expires_in_field = "expires_in"
error_field = "errcode"
"#;
        let config = parse(text).unwrap();
        assert_eq!(config.accounts.len(), 5);
        let Provider::OAuth2(fitbit) = &config.accounts[0].provider else {
            panic!()
        };
        assert_eq!(
            fitbit.scopes[0],
            "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly"
        );
        assert!(fitbit
            .auth_params
            .contains(&("access_type".into(), "offline".into())));
        assert_eq!(
            config.accounts[3].upstream,
            vec!["weixin".parse::<AccountName>().unwrap()]
        );
        assert!(config.accounts[4].provider.needs_secret());
    }

    #[test]
    fn errors_name_line_account_and_key() {
        let text = "[[account]]\nname = \"fb\"\nprovider = \"fitbt\"\n";
        let e = parse(text).unwrap_err();
        assert!(
            e.starts_with(
                "config.toml:3:12: account `fb`: key `provider`: unknown provider `fitbt`"
            ),
            "{e}"
        );

        let e = parse("[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\nclientid = \"y\"\n").unwrap_err();
        assert!(
            e.contains(":5:1: account `a`: key `clientid`: unknown field"),
            "{e}"
        );

        let e = parse("[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\n[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\n").unwrap_err();
        assert!(
            e.contains(":6:8: account `a`: key `name`: duplicate account name `a`"),
            "{e}"
        );

        let e = parse("[[account]\nname = 1").unwrap_err();
        assert!(e.starts_with("config.toml:1:"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn cycles_are_refused() {
        let text = r#"
[[account]]
name = "a"
provider = "wechat-jsapi-ticket"
depends_on = "b"
[[account]]
name = "b"
provider = "wechat-jsapi-ticket"
depends_on = "a"
"#;
        let e = parse(text).unwrap_err();
        assert!(
            e.contains("key `depends_on`: dependency cycle: a → b → a"),
            "{e}"
        );
    }

    #[test]
    fn keys_a_provider_ignores_are_refused() {
        let e = parse("[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\nurl = \"http://x\"\n").unwrap_err();
        assert!(
            e.contains("account `a`: key `url`: provider `wechat` does not use this key"),
            "{e}"
        );
    }

    #[test]
    fn remote_listen_needs_consent() {
        let e = parse("[api]\nlisten = \"0.0.0.0:8732\"\n").unwrap_err();
        assert!(e.contains("key `listen`"), "{e}");
        assert!(parse("[api]\nlisten = \"0.0.0.0:8732\"\nallow_remote = true\n").is_ok());
    }
}
