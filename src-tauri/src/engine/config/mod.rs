//! Configuration: `config.toml` → resolved [`Config`]. Two stages: `raw` mirrors the file
//! (spanned, unknown keys refused), `presets` turns each account into a provider. Errors
//! carry file, line and column, account and key. Loading never writes, except to create a
//! missing file with commented examples.
//! * `raw`      the file as written           * `presets`  provider defaults and key rules
//! * `resolve`  raw → accounts, cycles refused    * `fields`   the providers' own fields
//! * `error`    located, one-line messages        * `example`  the commented file made at first run

pub mod asking;
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
    /// `ask_first`, `ask_timeout`, `[api.allow]`: who takes tokens without asking.
    pub asking: asking::AskSettings,
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
mod tests;
