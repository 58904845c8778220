//! TokenBoy's `token_sources` → Tokenwarden `[[account]]` tables. A source that fetches
//! `cgi-bin/token` is a `wechat` account, one that fetches `cgi-bin/ticket/getticket` with
//! another source's token is a `wechat-jsapi-ticket` account that depends on it, and any
//! other is an `http` account with its query (or form) as written. Secrets never reach the
//! output: a WeChat appsecret, or an argument named like a secret, becomes a
//! `tokenwarden secret set` to run. `{{results.NAME.FIELD}}` is translated to
//! `{{accounts.NAME.access_token}}`; any other placeholder is an error with its position.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use url::Url;

use super::pyliteral::{Pos, Statement, Value};
use crate::engine::names::AccountName;

#[derive(Debug, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ImportError {
    pub at: Pos,
    pub message: String,
}

fn error<T>(at: Pos, message: impl Into<String>) -> Result<T, ImportError> {
    Err(ImportError {
        at,
        message: message.into(),
    })
}

/// The config to append, and the secrets to set (account, where the value is in config.py).
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    pub secrets: Vec<(AccountName, String, Pos)>,
}

/// Argument names whose values are secrets, not to be copied.
const SECRET_ARGS: &[&str] = &[
    "secret",
    "appsecret",
    "app_secret",
    "client_secret",
    "password",
    "api_key",
    "apikey",
];

struct Source<'a> {
    name: AccountName,
    at: Pos,
    url: Url,
    method: String,
    args: Vec<(&'a str, &'a Value)>,
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
        let url = Url::parse(url).map_err(|e| ImportError {
            at: url_at,
            message: format!("`{url}` is not a URL: {e}"),
        })?;
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

/// `{{results.NAME.FIELD}}` → the source it names; anything else in `{{…}}` is an error.
/// A `{{results.NAME.FIELD}}` found in a string: the source it names, and where it is.
struct Reference<'a> {
    source: &'a AccountName,
    span: std::ops::Range<usize>,
}

fn reference<'a>(
    text: &str,
    at: Pos,
    known: &'a [AccountName],
) -> Result<Option<Reference<'a>>, ImportError> {
    let Some(start) = text.find("{{") else {
        return Ok(None);
    };
    let inside_at = Pos {
        line: at.line,
        column: at.column + 1 + start,
    };
    let Some(end) = text[start..].find("}}") else {
        return error(inside_at, format!("`{text}`: a `{{{{` that is not closed"));
    };
    let inside = text[start + 2..start + end].trim();
    let parts: Vec<&str> = inside.split('.').collect();
    match parts.as_slice() {
        ["results", name, "access_token" | "ticket"] => match known.iter().find(|k| k.as_str() == *name) {
            Some(source) => Ok(Some(Reference {
                source,
                span: start..start + end + 2,
            })),
            None => error(inside_at, format!("`{{{{{inside}}}}}` names source `{name}`, which is not in token_sources")),
        },
        _ => error(inside_at, format!("unknown placeholder `{{{{{inside}}}}}`; TokenBoy's are `{{{{results.NAME.access_token}}}}` (or `.ticket`)")),
    }
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

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
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
            let mut url = source.url.clone();
            url.set_query(None);
            let mut table = BTreeMap::new();
            let mut secret = None;
            for (key, value) in &source.args {
                let (text, at) = match value {
                    Value::Str(s, at) => (s.clone(), *at),
                    Value::Number(n) => (n.clone(), source.at),
                    Value::Bool(b) => (if *b { "True" } else { "False" }.to_owned(), source.at),
                    _ => {
                        return error(
                            source.at,
                            format!(
                                "argument `{key}` of source `{name}` is not a string or a number"
                            ),
                        )
                    }
                };
                let text = if SECRET_ARGS.contains(&key.to_ascii_lowercase().as_str()) {
                    if secret.replace(at).is_some() {
                        return error(at, format!("source `{name}` has two secret arguments; an `http` account keeps one (`{{{{secret}}}}`)"));
                    }
                    "{{secret}}".to_owned()
                } else if let Some(r) = reference(&text, at, &names)? {
                    format!(
                        "{}{{{{accounts.{}.access_token}}}}{}",
                        &text[..r.span.start],
                        r.source,
                        &text[r.span.end..]
                    )
                } else {
                    text
                };
                table.insert(key.to_string(), text);
            }
            let args: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_str(v)))
                .collect();
            let field = if source.method == "GET" {
                "query"
            } else {
                "form"
            };
            let _ = write!(
                toml,
                "provider = \"http\"\nurl = {}\nmethod = {}\n{field} = {{ {} }}\ntoken_field = \"access_token\"\nexpires_in_field = \"expires_in\"\n",
                toml_str(url.as_str()),
                toml_str(&source.method),
                args.join(", ")
            );
            if source
                .url
                .host_str()
                .is_some_and(|h| h.ends_with("weixin.qq.com"))
            {
                toml.push_str("error_field = \"errcode\"\n");
            }
            if let Some(at) = secret {
                secrets.push((name.clone(), "the secret argument".to_owned(), at));
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

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        toml_str(key)
    }
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
        let config = crate::engine::config::Config::parse(std::path::Path::new("c.toml"), toml)
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
