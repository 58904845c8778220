//! TokenBoy's `token_sources` → Tokenwarden `[[account]]` tables. A source that fetches
//! `cgi-bin/token` is a `wechat` account, one that fetches `cgi-bin/ticket/getticket` with
//! another source's token is a `wechat-jsapi-ticket` account that depends on it, and any
//! other is an `http` account with its query (or form) as written (`http`). Secrets never
//! reach the output: a WeChat appsecret, or an argument named like a secret, becomes a
//! `tokenwarden secret set` to run, and a URL with a password in it is refused.
//! `{{results.NAME.FIELD}}` is translated to `{{accounts.NAME.access_token}}`
//! (`placeholder`); any other placeholder is an error with its position.

use std::fmt::Write as _;

use url::Url;

use super::placeholder::{reference, Reference};
use super::pyliteral::{Pos, Statement, Value};
pub use super::source::ImportError;
use super::source::{error, toml_str, Source};
use crate::engine::AccountName;

/// The config to append, and the secrets to set (account, where the value is in config.py).
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    pub secrets: Vec<(AccountName, String, Pos)>,
}

/// Reads every `token_sources` entry (item assignments, and a whole dict assigned at once).
fn sources(statements: &[Statement]) -> Result<Vec<Source<'_>>, ImportError> {
    let mut entries: Vec<(&str, &Value, Pos)> = Vec::new();
    for statement in statements {
        match statement {
            Statement::SetItem {
                name,
                key,
                value,
                at,
            } if name == "token_sources" => entries.push((key, value, *at)),
            Statement::Assign {
                name,
                value: Value::Dict(items, _),
            } if name == "token_sources" => {
                for (key, value) in items {
                    let Value::Str(key, at) = key else {
                        continue;
                    };
                    entries.push((key, value, *at));
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (key, value, at) in entries {
        let name: AccountName = key.parse().map_err(|e| ImportError {
            at,
            message: format!("source `{key}` cannot be an account name: {e}"),
        })?;
        let Value::Dict(_, at) = value else {
            return error(at, format!("source `{key}` is not a dict"));
        };
        let text = |field: &str| -> Result<Option<(&str, Pos)>, ImportError> {
            match value.get(field) {
                None => Ok(None),
                Some(Value::Str(s, at)) => Ok(Some((s.as_str(), *at))),
                Some(_) => error(*at, format!("`{field}` of source `{key}` is not a string")),
            }
        };
        let Some((url, url_at)) = text("url")? else {
            return error(*at, format!("source `{key}` has no `url`"));
        };
        // The URL is not quoted: it may hold a password.
        let url = Url::parse(url).map_err(|e| ImportError {
            at: url_at,
            message: format!("the `url` of source `{key}` is not a URL: {e}"),
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return error(url_at, format!("the `url` of source `{key}` holds a user name and password, which the config file may not; take them out (an `http` account can send `headers = {{ Authorization = \"Basic {{{{secret}}}}\" }}`, its secret the base64 of user:password)"));
        }
        let method = text("method")?
            .map_or("GET", |(m, _)| m)
            .to_ascii_uppercase();
        let args = match value.get("args") {
            None => Vec::new(),
            Some(Value::Dict(items, _)) => items
                .iter()
                .map(|(k, v)| match k {
                    Value::Str(k, _) => Ok((k.as_str(), v)),
                    _ => error(
                        *at,
                        format!("an argument name of source `{key}` is not a string"),
                    ),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return error(*at, format!("`args` of source `{key}` is not a dict")),
        };
        out.push(Source {
            name,
            at: *at,
            url,
            method,
            args,
        });
    }
    Ok(out)
}

fn arg_str<'a>(args: &[(&str, &'a Value)], key: &str) -> Option<(&'a str, Pos)> {
    args.iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| match v {
            Value::Str(s, at) => Some((s.as_str(), *at)),
            _ => None,
        })
}

/// `base_url` when the source talks to a WeChat-like host other than WeChat's own.
fn base_line(url: &Url) -> String {
    if url.host_str() == Some("api.weixin.qq.com") && url.scheme() == "https" {
        return String::new();
    }
    let mut base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        let _ = write!(base, ":{port}");
    }
    format!("base_url = {}\n", toml_str(&base))
}

pub fn translate(statements: &[Statement]) -> Result<Imported, ImportError> {
    let sources = sources(statements)?;
    let names: Vec<AccountName> = sources.iter().map(|s| s.name.clone()).collect();
    let mut toml = String::new();
    let mut secrets = Vec::new();
    for source in &sources {
        let name = &source.name;
        let _ = writeln!(toml, "[[account]]\nname = {}", toml_str(name.as_str()));
        let path = source.url.path();
        if path.ends_with("/cgi-bin/token") {
            let Some((appid, _)) = arg_str(&source.args, "appid") else {
                return error(
                    source.at,
                    format!("source `{name}` fetches cgi-bin/token without an `appid`"),
                );
            };
            let _ = write!(
                toml,
                "provider = \"wechat\"\nclient_id = {}\n{}",
                toml_str(appid),
                base_line(&source.url)
            );
            if let Some((_, at)) = arg_str(&source.args, "secret") {
                secrets.push((name.clone(), "the appsecret".to_owned(), at));
            }
        } else if path.ends_with("/cgi-bin/ticket/getticket") {
            let kind = arg_str(&source.args, "type").map_or("jsapi", |(t, _)| t);
            if kind != "jsapi" {
                return error(source.at, format!("source `{name}` fetches `{kind}` tickets; only jsapi tickets have a preset"));
            }
            let Some((token, at)) = arg_str(&source.args, "access_token") else {
                return error(
                    source.at,
                    format!("source `{name}` fetches a ticket without an access_token"),
                );
            };
            let Some(Reference {
                source: upstream, ..
            }) = reference(token, at, &names)?
            else {
                return error(
                    at,
                    format!(
                        "source `{name}`'s access_token is not `{{{{results.NAME.access_token}}}}`"
                    ),
                );
            };
            let _ = write!(
                toml,
                "provider = \"wechat-jsapi-ticket\"\ndepends_on = {}\n{}",
                toml_str(upstream.as_str()),
                base_line(&source.url)
            );
        } else {
            let (lines, secret) = super::http::account(source, &names)?;
            toml.push_str(&lines);
            if let Some((what, at)) = secret {
                secrets.push((name.clone(), what, at));
            }
        }
        toml.push('\n');
    }
    if sources.is_empty() {
        return error(
            Pos { line: 1, column: 1 },
            "no `token_sources` entries found",
        );
    }
    Ok(Imported { toml, secrets })
}

#[cfg(test)]
mod tests {
    use super::super::pyliteral::parse;
    use super::*;

    const CONFIG: &str = "token_sources = {}\n\
token_sources['weixin'] = {\n    'url':'https://api.weixin.qq.com/cgi-bin/token',\n    'method':'GET',\n    'args':{'grant_type':'client_credential','appid':'wx1','secret':'s3cr3t-appsecret'},\n}\n\
token_sources['weixin_jsticket'] = {\n    'url':'https://api.weixin.qq.com/cgi-bin/ticket/getticket',\n    'method':'GET',\n    'args':{'type':'jsapi','access_token':'{{results.weixin.access_token}}'},\n}\n\
token_sources['other'] = {'url':'https://api.example.com/token?x=1','method':'POST','args':{'client_id':'c','client_secret':'hush','t':'{{results.weixin.access_token}}'}}\n";

    #[test]
    fn sources_become_accounts_and_secrets_stay_behind() {
        let imported = translate(&parse(CONFIG).unwrap()).unwrap();
        let toml = &imported.toml;
        assert!(!toml.contains("s3cr3t") && !toml.contains("hush"), "{toml}");
        let config = crate::engine::Config::parse(std::path::Path::new("c.toml"), toml)
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let providers: Vec<&str> = config
            .accounts
            .iter()
            .map(|a| a.provider_name.as_str())
            .collect();
        assert_eq!(providers, ["wechat", "wechat-jsapi-ticket", "http"]);
        assert_eq!(config.accounts[1].upstream[0].as_str(), "weixin");
        assert!(
            toml.contains("t = \"{{accounts.weixin.access_token}}\""),
            "{toml}"
        );
        assert!(toml.contains("client_secret = \"{{secret}}\""), "{toml}");
        let secrets: Vec<(&str, usize)> = imported
            .secrets
            .iter()
            .map(|(n, _, at)| (n.as_str(), at.line))
            .collect();
        assert_eq!(secrets, [("weixin", 5), ("other", 12)]);
    }

    #[test]
    fn an_argument_is_a_secret_by_its_name_unless_it_names_a_kind_or_another_source() {
        for (arg, value, secret) in [
            ("corpsecret", "'tw-canary'", true),
            ("Refresh_Token", "'tw-canary'", true),
            ("client_assertion", "'tw-canary'", true),
            ("PassWord", "'tw-canary'", true),
            ("X-Api-Key", "'tw-canary'", true),
            ("AppKey", "424242", true),
            ("access_token", "'tw-canary'", true),
            ("grant_type", "'refresh_token'", false),
            ("client_assertion_type", "'urn:x'", false),
            ("token_type_hint", "'refresh_token'", false),
            ("token_field", "'access_token'", false),
            ("use_key", "True", false),
            ("access_token", "'{{results.up.access_token}}'", false),
        ] {
            let text = format!(
                "token_sources = {{}}\ntoken_sources['up'] = {{'url': 'https://up.example/t'}}\n\
                 token_sources['x'] = {{'url': 'https://x.example/t', 'args': {{{arg:?}: {value}}}}}\n"
            );
            let imported = translate(&parse(&text).unwrap()).unwrap();
            let left: Vec<&str> = imported
                .secrets
                .iter()
                .map(|(n, _, _)| n.as_str())
                .collect();
            let placeholder = imported.toml.contains("{{secret}}");
            assert_eq!(
                (left == ["x"], placeholder),
                (secret, secret),
                "{arg}: {}",
                imported.toml
            );
            if secret {
                assert!(
                    !imported.toml.contains(value.trim_matches('\'')),
                    "{}",
                    imported.toml
                );
            }
        }
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_at_its_position() {
        let text = CONFIG.replace("{{results.weixin.access_token}}'}", "{{env.TOKEN}}'}");
        let e = translate(&parse(&text).unwrap()).unwrap_err();
        assert_eq!(e.at.line, 10, "{e}");
        assert!(
            e.message.contains("unknown placeholder `{{env.TOKEN}}`"),
            "{e}"
        );
        let text = CONFIG.replace(
            "results.weixin.access_token}}'}",
            "results.nobody.access_token}}'}",
        );
        let e = translate(&parse(&text).unwrap()).unwrap_err();
        assert!(e.message.contains("`nobody`"), "{e}");
    }
}
