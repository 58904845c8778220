//! The settings of the programs that take tokens in their own formats: git's credential
//! helper (`git_hosts`, `git_username` on an account) and the metadata server for Google's
//! client libraries (`[metadata]`).

use std::net::SocketAddr;
use std::sync::Arc;

use super::error::Problem;
use super::raw::{RawAccount, RawMetadata, S};
use super::{Account, ApiSettings, Config};
use crate::engine::names::AccountName;

impl Config {
    /// The account whose `git_hosts` best match a git request (the longest path prefix).
    pub fn git_account(&self, host: &str, path: Option<&str>) -> Option<&Arc<Account>> {
        self.accounts
            .iter()
            .filter_map(|a| {
                let best = a
                    .git
                    .as_ref()?
                    .hosts
                    .iter()
                    .filter_map(|h| h.matches(host, path))
                    .max()?;
                Some((best, a))
            })
            .max_by_key(|(best, _)| *best)
            .map(|(_, a)| a)
    }
}

impl Account {
    /// The remote MCP server of a `provider = "mcp"` account.
    pub fn mcp_server(&self) -> Option<&url::Url> {
        match &self.provider {
            crate::engine::provider::Provider::OAuth2(spec) => spec.mcp.as_ref(),
            _ => None,
        }
    }
}

/// Which git remotes an account's token is the password for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSettings {
    pub hosts: Vec<GitHost>,
    /// The username sent with the token: what the host expects (`oauth2` for GitLab and
    /// most, `x-access-token` for GitHub).
    pub username: String,
}

/// `git.example.com[:port][/path/prefix]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitHost {
    pub host: String,
    /// Path segments the repository's path starts with; empty for the whole host.
    pub prefix: Vec<String>,
}

impl GitHost {
    fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .unwrap_or(text);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = host.to_ascii_lowercase();
        let bad = |c: char| c.is_whitespace() || "@?#\\".contains(c);
        if host.is_empty() || host.contains(bad) || path.contains(bad) {
            return Err(format!(
                "`{text}` is not a git host: write it as git.example.com, git.example.com:8443 or git.example.com/group/"
            ));
        }
        Ok(Self {
            host,
            prefix: segments(path),
        })
    }

    /// How well a request for `host` and `path` (git sends the path only with
    /// `credential.useHttpPath`) matches: the number of prefix segments, or `None`.
    pub fn matches(&self, host: &str, path: Option<&str>) -> Option<usize> {
        if !self.host.eq_ignore_ascii_case(host) {
            return None;
        }
        if self.prefix.is_empty() {
            return Some(0);
        }
        let path = segments(path?);
        path.starts_with(&self.prefix).then_some(self.prefix.len())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn git(raw: &RawAccount) -> Result<Option<GitSettings>, Problem> {
    let Some(list) = &raw.git_hosts else {
        if let Some(user) = &raw.git_username {
            return Err(Problem::new(
                user.span(),
                Some("git_username"),
                "is used only with `git_hosts`, the hosts whose git remotes take this account's token",
            ));
        }
        return Ok(None);
    };
    let mut hosts = Vec::new();
    for text in list.get_ref() {
        hosts.push(
            GitHost::parse(text.trim())
                .map_err(|m| Problem::new(list.span(), Some("git_hosts"), m))?,
        );
    }
    if hosts.is_empty() {
        return Err(Problem::new(
            list.span(),
            Some("git_hosts"),
            "is empty; name the hosts, e.g. git_hosts = [\"git.example.com\"]",
        ));
    }
    let username = match &raw.git_username {
        Some(u) if u.get_ref().trim().is_empty() || u.get_ref().contains(['\n', '\0']) => {
            return Err(Problem::new(
                u.span(),
                Some("git_username"),
                "must be a username, e.g. \"oauth2\" or \"x-access-token\"",
            ))
        }
        Some(u) => u.get_ref().trim().to_owned(),
        None if raw.provider.get_ref() == "github" => "x-access-token".to_owned(),
        None => "oauth2".to_owned(),
    };
    Ok(Some(GitSettings { hosts, username }))
}

/// Two accounts for the same host and prefix would make git's answer depend on the order.
pub(super) fn check_git_overlap(
    accounts: &[Arc<Account>],
    raw: &[S<RawAccount>],
) -> Result<(), Problem> {
    let mut seen: Vec<(&GitHost, &AccountName)> = Vec::new();
    for (account, spanned) in accounts.iter().zip(raw) {
        for host in account.git.iter().flat_map(|g| &g.hosts) {
            if let Some((_, first)) = seen.iter().find(|(h, _)| *h == host) {
                let span = spanned
                    .get_ref()
                    .git_hosts
                    .as_ref()
                    .map_or(spanned.span(), |g| g.span());
                let mut p = Problem::new(
                    span,
                    Some("git_hosts"),
                    format!(
                        "`{}{}` is already in account `{first}`'s git_hosts; give each host (or path prefix) to one account",
                        host.host,
                        host.prefix.iter().map(|s| format!("/{s}")).collect::<String>()
                    ),
                );
                p.account = Some(account.name.to_string());
                return Err(p);
            }
            seen.push((host, &account.name));
        }
    }
    Ok(())
}

/// `[metadata]`: where the GCE-style metadata server listens and whose token it serves.
#[derive(Clone, Debug)]
pub struct MetadataSettings {
    pub listen: SocketAddr,
    pub account: AccountName,
    /// What `…/service-accounts/default/email` answers.
    pub email: String,
}

pub(super) fn metadata(
    raw: Option<&S<RawMetadata>>,
    names: &[AccountName],
    api: &ApiSettings,
) -> Result<Option<MetadataSettings>, Problem> {
    let Some(raw) = raw else { return Ok(None) };
    let m = raw.get_ref();
    let listen: SocketAddr = m.listen.get_ref().parse().map_err(|_| {
        Problem::new(
            m.listen.span(),
            Some("listen"),
            format!(
                "`{}` is not an IP:port address, e.g. \"127.0.0.1:8739\"",
                m.listen.get_ref()
            ),
        )
    })?;
    if !listen.ip().is_loopback() {
        return Err(Problem::new(
            m.listen.span(),
            Some("listen"),
            "the metadata server has no key: it listens on a loopback address only, e.g. \"127.0.0.1:8739\"",
        ));
    }
    if listen.port() == 0 || listen.port() == api.listen.port() {
        return Err(Problem::new(
            m.listen.span(),
            Some("listen"),
            format!(
                "needs a port of its own (not 0, and not the API's {})",
                api.listen.port()
            ),
        ));
    }
    let account: AccountName =
        m.account
            .get_ref()
            .parse()
            .map_err(|e: crate::engine::names::BadAccountName| {
                Problem::new(m.account.span(), Some("account"), e.to_string())
            })?;
    if !names.contains(&account) {
        return Err(Problem::new(
            m.account.span(),
            Some("account"),
            format!("no account is named `{account}`"),
        ));
    }
    let email = match &m.email {
        Some(e) if e.get_ref().trim().is_empty() || e.get_ref().contains(char::is_whitespace) => {
            return Err(Problem::new(
                e.span(),
                Some("email"),
                "must be an address without spaces, e.g. \"me@example.com\"",
            ))
        }
        Some(e) => e.get_ref().clone(),
        None => format!("{account}@tokenwarden.invalid"),
    };
    Ok(Some(MetadataSettings {
        listen,
        account,
        email,
    }))
}

#[cfg(test)]
mod tests {
    use super::GitHost;
    use crate::engine::config::Config;

    fn error(text: &str) -> String {
        Config::parse(std::path::Path::new("config.toml"), text)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    const OAUTH: &str = "provider = \"oauth2\"\nclient_id = \"c\"\nauth_url = \"https://a.example/auth\"\ntoken_url = \"https://a.example/token\"\n";

    #[test]
    fn bad_settings_of_the_token_takers_are_named_where_they_are() {
        let mcp = error("[[account]]\nname = \"m\"\nprovider = \"mcp\"\n");
        assert!(mcp.contains("needs `url`"), "{mcp}");
        let mcp = error("[[account]]\nname = \"m\"\nprovider = \"mcp\"\nurl = \"https://m.example/mcp\"\ntoken_url = \"https://x\"\n");
        assert!(mcp.contains("does not use this key"), "{mcp}");
        let twice = error(&format!(
            "[[account]]\nname = \"a\"\n{OAUTH}git_hosts = [\"git.example.com\"]\n[[account]]\nname = \"b\"\n{OAUTH}git_hosts = [\"GIT.example.com/\"]\n"
        ));
        assert!(
            twice.contains("already in account `a`'s git_hosts"),
            "{twice}"
        );
        assert!(
            twice.starts_with("config.toml:14:"),
            "points at b's git_hosts: {twice}"
        );
        let lonely = error(&format!(
            "[[account]]\nname = \"a\"\n{OAUTH}git_username = \"u\"\n"
        ));
        assert!(lonely.contains("only with `git_hosts`"), "{lonely}");
        let account = format!("[[account]]\nname = \"a\"\n{OAUTH}");
        let remote = error(&format!(
            "[metadata]\nlisten = \"0.0.0.0:8739\"\naccount = \"a\"\n{account}"
        ));
        assert!(remote.contains("loopback address only"), "{remote}");
        let nobody = error(&format!(
            "[metadata]\nlisten = \"127.0.0.1:8739\"\naccount = \"b\"\n{account}"
        ));
        assert!(nobody.contains("no account is named `b`"), "{nobody}");
        let shared = error(&format!(
            "[metadata]\nlisten = \"127.0.0.1:8732\"\naccount = \"a\"\n{account}"
        ));
        assert!(shared.contains("a port of its own"), "{shared}");
    }

    #[test]
    fn the_longest_prefix_picks_the_account() {
        let text = format!(
            "[[account]]\nname = \"all\"\n{OAUTH}git_hosts = [\"git.example.com\"]\n[[account]]\nname = \"team\"\n{OAUTH}git_hosts = [\"git.example.com/team\"]\ngit_username = \"x-access-token\"\n"
        );
        let config = Config::parse(std::path::Path::new("config.toml"), &text).unwrap();
        let pick = |path| {
            config
                .git_account("git.example.com", path)
                .map(|a| a.name.to_string())
        };
        assert_eq!(pick(Some("team/repo.git")).as_deref(), Some("team"));
        assert_eq!(pick(Some("other/repo.git")).as_deref(), Some("all"));
        assert_eq!(pick(None).as_deref(), Some("all"));
        assert!(config.git_account("elsewhere.example.com", None).is_none());
    }

    #[test]
    fn a_git_host_matches_its_host_and_the_longest_prefix_wins() {
        let whole = GitHost::parse("Git.Example.com").unwrap();
        let group = GitHost::parse("https://git.example.com/team/").unwrap();
        assert_eq!(whole.matches("git.example.com", None), Some(0));
        assert_eq!(
            whole.matches("git.example.com", Some("team/r.git")),
            Some(0)
        );
        assert_eq!(whole.matches("other.example.com", None), None);
        assert_eq!(
            group.matches("git.example.com", Some("team/r.git")),
            Some(1)
        );
        assert_eq!(group.matches("git.example.com", Some("teams/r.git")), None);
        assert_eq!(
            group.matches("git.example.com", None),
            None,
            "no path: no prefix match"
        );
        assert!(GitHost::parse("user@git.example.com").is_err());
        assert!(GitHost::parse("").is_err());
        assert_eq!(
            GitHost::parse("git.example.com:8443").unwrap().host,
            "git.example.com:8443"
        );
    }
}
