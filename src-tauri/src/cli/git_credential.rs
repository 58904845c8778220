//! `git-credential get|store|erase`: git's credential helper protocol
//! (gitcredentials(7), git-credential(1)). git writes `key=value` lines on stdin; for `get`
//! the helper answers the username, the account's fresh token as the password, and when it
//! expires. `erase` is git saying the host refused that password: it is reported to the
//! engine like any rejected token (one refresh for every report, none for an old token), so
//! the next git command gets a new one. `store` has nothing to keep: the token is ours.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::backend::{token_preferring, Backend};
use crate::engine::{Config, Secret};

/// What git asks for, as it described the remote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub protocol: Option<String>,
    pub host: Option<String>,
    /// Only with `credential.useHttpPath = true`.
    pub path: Option<String>,
    pub password: Option<String>,
}

impl Request {
    /// Reads `key=value` lines up to a blank line or the end. Keys git may add later (and
    /// `capability[]`, `wwwauth[]`) are ignored.
    pub fn read(input: impl BufRead) -> Result<Self> {
        let mut fields = HashMap::new();
        for line in input.lines() {
            let line = line.context("reading git's request on stdin")?;
            if line.is_empty() {
                break;
            }
            if let Some((key, value)) = line.split_once('=') {
                fields.insert(key.to_owned(), value.to_owned());
            }
        }
        Ok(Self {
            protocol: fields.remove("protocol"),
            host: fields.remove("host"),
            path: fields.remove("path"),
            password: fields.remove("password"),
        })
    }
}

/// How long the token handed to git should stay valid (where the provider's tokens live that
/// long): a clone of a large repository takes a while, and git sends the password again on
/// every request.
const MIN_VALID: Duration = Duration::from_secs(5 * 60);

pub async fn run(backend: &impl Backend, config: &Config, operation: &str) -> Result<()> {
    let request = Request::read(std::io::stdin().lock())?;
    // Tokens go over https (or http to this machine, for tests and local forges) only.
    if !matches!(request.protocol.as_deref(), Some("https" | "http")) {
        return Ok(());
    }
    let Some(host) = request.host.as_deref() else {
        return Ok(());
    };
    // No account for this remote: say nothing, so that git asks its next helper.
    let Some(account) = config.git_account(host, request.path.as_deref()) else {
        return Ok(());
    };
    let git = account
        .git
        .as_ref()
        .expect("git_account matched its git_hosts");
    match operation {
        "get" => {
            let token = token_preferring(backend, &account.name, MIN_VALID).await?;
            let mut out = std::io::stdout().lock();
            write!(
                out,
                "username={}\npassword={}\npassword_expiry_utc={}\n",
                git.username,
                token.access_token.expose(),
                token.expires_at.unix()
            )?;
            out.flush()?;
        }
        "erase" => {
            if let Some(password) = request.password {
                let fresh = backend
                    .rejected(&account.name, &Secret::new(password))
                    .await?;
                eprintln!(
                    "tokenwarden: {host} refused {}'s token; the next git command gets one valid until {}",
                    account.name, fresh.expires_at
                );
            }
        }
        // `store` after a success: the token is Tokenwarden's own, nothing to keep.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn a_request_is_read_up_to_the_blank_line() {
        let input = "protocol=https\nhost=git.example.com:8443\npath=team/repo.git\ncapability[]=authtype\nwwwauth[]=Basic realm=\"x\"\n\nprotocol=ignored\n";
        let r = Request::read(input.as_bytes()).unwrap();
        assert_eq!(r.protocol.as_deref(), Some("https"));
        assert_eq!(r.host.as_deref(), Some("git.example.com:8443"));
        assert_eq!(r.path.as_deref(), Some("team/repo.git"));
        assert_eq!(r.password, None);
    }
}
