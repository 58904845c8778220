//! A source that is neither WeChat token nor ticket: an `http` account with the source's
//! arguments as its query (GET) or form (POST). An argument named like a secret is never
//! copied: its value becomes `{{secret}}`, the one secret an `http` account holds, and the
//! user moves it into the keychain with `secret set`. A name decides, not a value, because
//! a value cannot be told from an identifier by looking at it; a template naming another
//! source is the exception, since it holds no secret and must keep working.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::placeholder::reference;
use super::pyliteral::{Pos, Value};
use super::source::{error, toml_str, ImportError, Source};
use crate::engine::AccountName;

/// Words that make an argument a secret wherever they are in its name, in any case:
/// WeCom's `corpsecret`, `refresh_token`, `client_assertion`, `PassWord`, `AppKey`.
const SECRET_WORDS: &[&str] = &["secret", "token", "assertion", "password", "passwd", "key"];

/// Last words of names that say which kind of secret is sent, or where, not the secret:
/// `client_assertion_type` (RFC 7523), `token_type_hint` (RFC 7009), `token_field`. Their
/// values are words from a spec; taken for secrets, they would be a second secret, which
/// refuses the source.
const KIND_ENDINGS: &[&str] = &["type", "hint", "field"];

/// Whether the argument `name` holds a secret. A false positive costs little (a harmless
/// value in the keychain, or a source refused with a reason), a false negative a secret in
/// the config file, so anything that might be one is.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let last = name.rsplit(['_', '-', '.']).next().unwrap_or_default();
    SECRET_WORDS.iter().any(|w| name.contains(w)) && !KIND_ENDINGS.contains(&last)
}

/// The `[[account]]` lines after `name` for `source`, and its secret argument: what to call
/// it and where its value is in config.py.
pub fn account(
    source: &Source<'_>,
    names: &[AccountName],
) -> Result<(String, Option<(String, Pos)>), ImportError> {
    let name = &source.name;
    let mut table = BTreeMap::new();
    let mut secret: Option<(&str, Pos)> = None;
    for &(key, value) in &source.args {
        let text = match value {
            Value::Str(text, at) if is_secret_name(key) && text.contains("{{") => {
                // A template, whole, is not a secret; around literal text it cannot be split.
                match reference(text, *at, names)? {
                    Some(r) if r.span == (0..text.len()) => r.translate(text),
                    _ => return error(*at, format!("argument `{key}` of source `{name}` is named like a secret but mixes text with a placeholder; Tokenwarden keeps a secret whole (`{{{{secret}}}}`): set this account up by hand")),
                }
            }
            Value::Str(_, at) if is_secret_name(key) => take_secret(&mut secret, key, *at, name)?,
            // A number has no position of its own; its source's is near enough.
            Value::Number(_) if is_secret_name(key) => {
                take_secret(&mut secret, key, source.at, name)?
            }
            Value::Str(text, at) => match reference(text, *at, names)? {
                Some(r) => r.translate(text),
                None => text.clone(),
            },
            Value::Number(n) => n.clone(),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            _ => {
                return error(
                    source.at,
                    format!("argument `{key}` of source `{name}` is not a string or a number"),
                )
            }
        };
        table.insert(key, text);
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
    let mut url = source.url.clone();
    url.set_query(None);
    let mut toml = String::new();
    let _ = write!(
        toml,
        "provider = \"http\"\nurl = {}\nmethod = {}\n{field} = {{ {} }}\ntoken_field = \"access_token\"\nexpires_in_field = \"expires_in\"\n",
        toml_str(url.as_str()),
        toml_str(&source.method),
        args.join(", ")
    );
    if url.host_str().is_some_and(|h| h.ends_with("weixin.qq.com")) {
        toml.push_str("error_field = \"errcode\"\n");
    }
    let secret = secret.map(|(key, at)| (format!("the `{key}` argument"), at));
    Ok((toml, secret))
}

/// `{{secret}}`, once per source: the engine gives an `http` account one secret.
fn take_secret<'a>(
    secret: &mut Option<(&'a str, Pos)>,
    key: &'a str,
    at: Pos,
    name: &AccountName,
) -> Result<String, ImportError> {
    if let Some((first, _)) = secret.replace((key, at)) {
        return error(at, format!("source `{name}` has two secret arguments, `{first}` and `{key}`; an `http` account keeps one (`{{{{secret}}}}`): set this account up by hand (a refresh token and a client secret: `provider = \"oauth2\"`)"));
    }
    Ok("{{secret}}".to_owned())
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
