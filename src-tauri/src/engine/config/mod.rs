//! Configuration: `config.toml` → resolved [`Config`]. Two stages: `raw` mirrors the file
//! (spanned, unknown keys refused), `presets` turns each account into a provider. Errors
//! carry file, line and column, account and key. Loading never writes, except to create a
//! missing file with commented examples.
//! * `raw`      the file as written           * `presets`  provider defaults and key rules
//! * `error`    located, one-line messages

pub mod error;
mod presets;
mod raw;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::ConfigError;
use error::{line_column, Located, Problem};
pub use presets::PRESETS;
use raw::RawConfig;

use super::names::AccountName;
use super::provider::Provider;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8732";

#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub api: ApiSettings,
    pub retry: RetrySettings,
    pub accounts: Vec<Arc<Account>>,
}

#[derive(Clone, Debug)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub allow_remote: bool,
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
    pub refresh_before: Option<Duration>,
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
        resolve(raw)
            .map_err(locate)
            .map(|(api, retry, accounts)| Config {
                path: path.to_owned(),
                api,
                retry,
                accounts,
            })
    }

    pub fn account(&self, name: &AccountName) -> Option<&Arc<Account>> {
        self.accounts.iter().find(|a| &a.name == name)
    }
}

/// serde says "unknown field `foo`, expected one of …"; pull out `foo` for the key slot.
fn unknown_key(message: &str) -> Option<std::borrow::Cow<'static, str>> {
    let rest = message.strip_prefix("unknown field `")?;
    let key = rest.split('`').next()?;
    Some(std::borrow::Cow::Owned(key.to_owned()))
}

type Resolved = (ApiSettings, RetrySettings, Vec<Arc<Account>>);

fn resolve(raw: RawConfig) -> Result<Resolved, Problem> {
    let api = raw.api.unwrap_or_default();
    let allow_remote = api.allow_remote.unwrap_or(false);
    let listen = match &api.listen {
        Some(l) => {
            let addr: SocketAddr = l.get_ref().parse().map_err(|_| {
                Problem::new(
                    l.span(),
                    Some("listen"),
                    format!(
                        "`{}` is not an IP:port address, e.g. \"127.0.0.1:8732\"",
                        l.get_ref()
                    ),
                )
            })?;
            if !addr.ip().is_loopback() && !allow_remote {
                return Err(Problem::new(l.span(), Some("listen"), "not a loopback address; tokens would be served to the network. Set `allow_remote = true` under [api] if that is really meant"));
            }
            addr
        }
        None => DEFAULT_LISTEN.parse().expect("valid"),
    };
    let mut retry = RetrySettings::default();
    if let Some(r) = raw.refresh {
        if let Some(v) = &r.retry_initial {
            retry.initial = presets::duration(v, "retry_initial")?.max(Duration::from_millis(100));
        }
        if let Some(v) = &r.retry_max {
            retry.max = presets::duration(v, "retry_max")?.max(retry.initial);
        }
    }

    let mut seen: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    let mut names = Vec::new();
    for account in &raw.account {
        let name = &account.get_ref().name;
        let parsed: AccountName =
            name.get_ref()
                .parse()
                .map_err(|e: super::names::BadAccountName| {
                    Problem::new(name.span(), Some("name"), e.to_string())
                })?;
        if let Some(first) = seen.insert(name.get_ref().clone(), name.span()) {
            let _ = first;
            return Err(Problem::new(
                name.span(),
                Some("name"),
                format!("duplicate account name `{parsed}`: names must be unique"),
            ));
        }
        names.push(parsed);
    }

    let mut accounts = Vec::new();
    // A WeChat ticket talks to the same host as the token it is fetched with.
    let bases: HashMap<&str, url::Url> = raw
        .account
        .iter()
        .filter(|a| a.get_ref().provider.get_ref() == "wechat")
        .filter_map(|a| {
            let base = a.get_ref().base_url.as_ref()?;
            Some((
                a.get_ref().name.get_ref().as_str(),
                url::Url::parse(base.get_ref()).ok()?,
            ))
        })
        .collect();
    for (spanned, name) in raw.account.iter().zip(&names) {
        let raw_account = spanned.get_ref();
        let with_account = |mut p: Problem| {
            p.account = Some(name.to_string());
            p
        };
        let parent_base = raw_account
            .depends_on
            .as_ref()
            .and_then(|d| bases.get(d.get_ref().as_str()));
        let provider = presets::resolve(raw_account, name, parent_base).map_err(with_account)?;
        let mut upstream = provider.upstream();
        if let Some(dep) = &raw_account.depends_on {
            let dep_name: AccountName =
                dep.get_ref()
                    .parse()
                    .map_err(|e: super::names::BadAccountName| {
                        with_account(Problem::new(dep.span(), Some("depends_on"), e.to_string()))
                    })?;
            if !names.contains(&dep_name) {
                return Err(with_account(Problem::new(
                    dep.span(),
                    Some("depends_on"),
                    format!("no account is named `{dep_name}`"),
                )));
            }
            if !upstream.contains(&dep_name) {
                upstream.push(dep_name);
            }
        }
        for up in &upstream {
            if !names.contains(up) {
                let span = raw_account
                    .url
                    .as_ref()
                    .map(|u| u.span())
                    .unwrap_or(spanned.span());
                return Err(with_account(Problem::new(
                    span,
                    None,
                    format!("a template names account `{up}`, which does not exist"),
                )));
            }
        }
        let refresh_before = raw_account
            .refresh_before
            .as_ref()
            .map(|v| presets::duration(v, "refresh_before"))
            .transpose()
            .map_err(with_account)?;
        accounts.push(Arc::new(Account {
            name: name.clone(),
            provider_name: raw_account.provider.get_ref().clone(),
            provider,
            upstream,
            refresh_before,
        }));
    }
    if let Some(cycle) = find_cycle(&accounts) {
        let at = raw
            .account
            .iter()
            .find(|a| a.get_ref().name.get_ref() == cycle[0].as_str())
            .expect("cycle members exist");
        let span = at
            .get_ref()
            .depends_on
            .as_ref()
            .map_or(at.span(), |d| d.span());
        let path = cycle
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" → ");
        let mut p = Problem::new(
            span,
            Some("depends_on"),
            format!("dependency cycle: {path}"),
        );
        p.account = Some(cycle[0].to_string());
        return Err(p);
    }
    Ok((
        ApiSettings {
            listen,
            allow_remote,
        },
        retry,
        accounts,
    ))
}

/// A dependency cycle, as the list of names around it (first repeated at the end).
fn find_cycle(accounts: &[Arc<Account>]) -> Option<Vec<AccountName>> {
    let edges: HashMap<&AccountName, &Vec<AccountName>> =
        accounts.iter().map(|a| (&a.name, &a.upstream)).collect();
    fn visit<'a>(
        node: &'a AccountName,
        edges: &HashMap<&'a AccountName, &'a Vec<AccountName>>,
        path: &mut Vec<&'a AccountName>,
        done: &mut HashSet<&'a AccountName>,
    ) -> Option<Vec<AccountName>> {
        if let Some(pos) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<AccountName> = path[pos..].iter().map(|n| (*n).clone()).collect();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flat_map(|v| v.iter()) {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = HashSet::new();
    accounts
        .iter()
        .find_map(|a| visit(&a.name, &edges, &mut Vec::new(), &mut done))
}

fn create_example(path: &Path) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // create_new: never replace a file that appeared meanwhile.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => std::io::Write::write_all(&mut file, EXAMPLE.as_bytes()).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Written when no config exists: every example commented out, so nothing runs until the
/// user chooses.
pub const EXAMPLE: &str = r#"# Tokenwarden configuration. Secrets never go here: `tokenwarden secret set NAME` puts an
# account's client secret in the OS keychain. Uncomment and edit an example to start.

# [api]
# listen = "127.0.0.1:8732"          # loopback only unless allow_remote = true

# [[account]]
# name = "fitbit"                     # unique, [a-z0-9_-]+
# provider = "fitbit"                 # Google Health API (Google OAuth), loopback redirect on any port
# client_id = "1234-abc.apps.googleusercontent.com"
# scopes = ["googlehealth.activity_and_fitness.readonly", "googlehealth.sleep.readonly"]

# [[account]]
# name = "weixin"
# provider = "wechat"                 # cgi-bin/token; endpoint = "stable" for cgi-bin/stable_token
# client_id = "wx1234567890"          # the appid; the appsecret goes in the keychain

# [[account]]
# name = "weixin_jsticket"
# provider = "wechat-jsapi-ticket"
# depends_on = "weixin"

# [[account]]
# name = "custom"
# provider = "http"
# url = "https://api.example.com/token"
# method = "GET"
# query = { grant_type = "client_credential", appid = "abc", secret = "{{secret}}" }
# token_field = "access_token"
# expires_in_field = "expires_in"
# error_field = "errcode"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("config.toml"), text).map_err(|e| e.to_string())
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
