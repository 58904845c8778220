//! Any token endpoint described in the config, TokenBoy style: a URL, a method, a query,
//! form or JSON body with `{{secret}}` and `{{accounts.NAME.access_token}}` templates, and
//! where in the JSON answer the token, its lifetime and an error code are.

use std::time::{Duration, SystemTime};

use super::error::retry_after;
use super::{Expires, FetchRequest, Issued, RefreshError};
use crate::engine::bounds;
use crate::engine::names::{AccountName, Deadline};
use crate::engine::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug)]
pub enum Expiry {
    /// Seconds from now, at this JSON path.
    InField(String),
    /// Unix seconds (or an RFC 3339 string), at this JSON path.
    AtField(String),
    Fixed(Duration),
}

#[derive(Debug)]
pub struct HttpSpec {
    pub url: String,
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub json: Option<serde_json::Value>,
    pub headers: Vec<(String, String)>,
    pub token_field: String,
    pub expiry: Expiry,
    pub error_field: Option<String>,
}

const SECRET: &str = "{{secret}}";

impl HttpSpec {
    pub fn uses_secret(&self) -> bool {
        self.templates().any(|t| t.contains(SECRET))
    }

    /// Accounts named in `{{accounts.NAME.access_token}}` templates.
    pub fn upstream(&self) -> Vec<AccountName> {
        let mut names: Vec<AccountName> = self.templates().flat_map(referenced_accounts).collect();
        names.sort();
        names.dedup();
        names
    }

    fn templates(&self) -> impl Iterator<Item = &str> {
        let json = self.json.iter().flat_map(json_strings);
        std::iter::once(self.url.as_str())
            .chain(
                self.query
                    .iter()
                    .chain(&self.form)
                    .chain(&self.headers)
                    .map(|(_, v)| v.as_str()),
            )
            .chain(json)
    }

    pub async fn fetch(&self, req: &FetchRequest<'_>) -> Result<Issued, RefreshError> {
        let fill = |text: &str| fill(text, req);
        let url = fill(&self.url)?;
        let mut request = match self.method {
            Method::Get => req.http.get(url.expose()),
            Method::Post => req.http.post(url.expose()),
        };
        let query = self
            .query
            .iter()
            .map(|(k, v)| Ok((k.clone(), fill(v)?)))
            .collect::<Result<Vec<_>, RefreshError>>()?;
        let query: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        request = request.query(&query);
        for (name, value) in &self.headers {
            request = request.header(name, fill(value)?.expose());
        }
        if !self.form.is_empty() {
            let form = self
                .form
                .iter()
                .map(|(k, v)| Ok((k.clone(), fill(v)?)))
                .collect::<Result<Vec<_>, RefreshError>>()?;
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
            request = request.form(&form);
        }
        if let Some(json) = &self.json {
            request = request.json(&fill_json(json, req)?);
        }
        let sent = crate::engine::clock::now();
        let response = request
            .send()
            .await
            .map_err(|e| RefreshError::network(req.account, req.provider, &e))?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let answered = Answered {
            sent,
            date: response
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        };
        let bytes = super::error::read_body(response, req.account, req.provider).await?;
        let body: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let code = body
            .as_ref()
            .and_then(|b| self.error_code(b))
            .or_else(|| super::error::status_code(status));
        if !(200..300).contains(&status) {
            return Err(RefreshError::Http {
                account: req.account.clone(),
                provider: req.provider.to_owned(),
                status,
                code,
                retry_after: wait,
            });
        }
        let bad = |what: String| RefreshError::bad_answer(req.account, req.provider, what);
        let body = body.ok_or_else(|| bad("the answer is not JSON".into()))?;
        if let Some(code) = code {
            return Err(RefreshError::Provider {
                account: req.account.clone(),
                provider: req.provider.to_owned(),
                code,
                message: None,
                transient: false,
                wait: None,
            });
        }
        self.read_issued(&body, answered).map_err(|e| match e {
            Unusable::Bad(what) => bad(what),
            Unusable::Expired {
                field,
                behind,
                by_date,
            } => RefreshError::ClockSkew {
                account: req.account.clone(),
                provider: req.provider.to_owned(),
                field,
                behind_secs: behind.as_secs(),
                by_date,
                again: false,
            },
        })
    }

    /// The token and its lifetime from a successful answer. The error names the path that
    /// did not hold what it should.
    pub(crate) fn read_issued(
        &self,
        body: &serde_json::Value,
        answered: Answered,
    ) -> Result<Issued, Unusable> {
        let now = answered.sent;
        let token = lookup(body, &self.token_field)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("no string at `{}` in the answer", self.token_field))?;
        let expires_at = match &self.expiry {
            // The config refuses a fixed lifetime over the bound.
            Expiry::Fixed(lifetime) => Deadline::after(now, *lifetime),
            Expiry::InField(path) => {
                let value = lookup(body, path)
                    .ok_or_else(|| format!("no number of seconds at `{path}` in the answer"))?;
                let lifetime = number(value)
                    .and_then(bounds::lifetime_f64)
                    .ok_or_else(|| format!("`{path}` is not a number of seconds, 0 or more"))?;
                Deadline::after(now, lifetime)
            }
            Expiry::AtField(path) => {
                let value = lookup(body, path)
                    .ok_or_else(|| format!("nothing at `{path}` in the answer"))?;
                let at = at_time(value).ok_or_else(|| {
                    format!("`{path}` is neither unix seconds nor an RFC 3339 time")
                })?;
                super::skew::deadline(at, answered.sent, answered.date).map_err(|skew| {
                    Unusable::Expired {
                        field: path.clone(),
                        behind: skew.behind,
                        by_date: skew.by_date,
                    }
                })?
            }
        };
        Ok(Issued {
            access: Secret::new(token.to_owned()),
            refresh: None,
            token_type: "Bearer".into(),
            scope: None,
            expires: Expires::At(expires_at),
            refresh_expires_at: None,
        })
    }

    /// A non-zero, non-empty value at `error_field` is a failure even with HTTP 200.
    fn error_code(&self, body: &serde_json::Value) -> Option<String> {
        let value = lookup(body, self.error_field.as_deref()?)?;
        let code = match value {
            serde_json::Value::Null | serde_json::Value::Bool(false) => return None,
            serde_json::Value::Number(n) if n.as_f64() == Some(0.0) => return None,
            serde_json::Value::String(s) if s.is_empty() || s == "0" => return None,
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // Quote only a code-shaped value: anything else might be a message with data in it.
        Some(super::error::code_shaped(&code))
    }
}

/// When a successful answer was asked for, by this machine's clock, and the `Date` it
/// carried (the provider's clock).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answered {
    /// Just before the request went out: a lifetime counted from here ends no later than
    /// the provider's own count does.
    pub sent: SystemTime,
    pub date: Option<SystemTime>,
}

/// Why a successful answer gives no token to use.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// Something at a path is missing or malformed; the text names the path.
    Bad(String),
    /// The expiry at `field` has already passed and nothing tells the lifetime the provider
    /// meant (see `skew`).
    Expired {
        field: String,
        behind: Duration,
        by_date: bool,
    },
}

impl From<String> for Unusable {
    fn from(what: String) -> Self {
        Self::Bad(what)
    }
}

/// `a.b.0.c`: object keys and array indexes.
fn lookup<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(value, |v, key| match v {
        serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => v.get(key),
    })
}

fn number(value: &serde_json::Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str()?.trim().parse().ok())
}

fn at_time(value: &serde_json::Value) -> Option<Deadline> {
    if let Some(secs) = number(value) {
        // Milliseconds are common too; nothing expires before 2001 in seconds' terms.
        let secs = if secs > 1e11 { secs / 1000.0 } else { secs };
        return Some(Deadline::from_unix(secs as i64));
    }
    let text = value.as_str()?;
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(Deadline::at(SystemTime::from(t)))
}

fn json_strings(value: &serde_json::Value) -> Vec<&str> {
    match value {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(items) => items.iter().flat_map(json_strings).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(json_strings).collect(),
        _ => Vec::new(),
    }
}

fn fill_json(
    value: &serde_json::Value,
    req: &FetchRequest<'_>,
) -> Result<serde_json::Value, RefreshError> {
    Ok(match value {
        serde_json::Value::String(s) => {
            serde_json::Value::String(fill(s, req)?.expose().to_owned())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|v| fill_json(v, req))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill_json(v, req)?)))
                .collect::<Result<_, RefreshError>>()?,
        ),
        other => other.clone(),
    })
}

/// Account names in `{{accounts.NAME.access_token}}` placeholders of one template.
pub fn referenced_accounts(text: &str) -> Vec<AccountName> {
    placeholders(text)
        .filter_map(|p| {
            p.strip_prefix("accounts.")?
                .strip_suffix(".access_token")?
                .parse()
                .ok()
        })
        .collect()
}

/// The inside of every `{{…}}` in a template.
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(inside, _)| inside.trim()))
}

/// Fills a template. The result may hold a secret, so it is one.
fn fill(text: &str, req: &FetchRequest<'_>) -> Result<Secret, RefreshError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inside = after[..end].trim();
        if inside == "secret" {
            let secret = req
                .client_secret
                .ok_or_else(|| RefreshError::MissingSecret {
                    account: req.account.clone(),
                })?;
            out.push_str(secret.expose());
        } else if let Some(name) = referenced_accounts(&format!("{{{{{inside}}}}}"))
            .into_iter()
            .next()
        {
            let token = req
                .upstream
                .get(&name)
                .ok_or_else(|| RefreshError::Upstream {
                    account: req.account.clone(),
                    upstream: name.clone(),
                })?;
            out.push_str(token.expose());
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Secret::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found() {
        let names = referenced_accounts("a={{ accounts.wx.access_token }}&b={{secret}}");
        assert_eq!(names, vec!["wx".parse::<AccountName>().unwrap()]);
        assert_eq!(
            placeholders("x{{secret}}y{{a}}").collect::<Vec<_>>(),
            vec!["secret", "a"]
        );
    }

    #[test]
    fn lookup_walks_paths() {
        let v = serde_json::json!({"data": {"items": [{"token": "t"}]}});
        assert_eq!(
            lookup(&v, "data.items.0.token").and_then(|v| v.as_str()),
            Some("t")
        );
        assert!(lookup(&v, "data.missing").is_none());
    }

    #[test]
    fn times_parse_in_both_forms() {
        assert_eq!(
            at_time(&serde_json::json!(1_900_000_000)).unwrap().unix(),
            1_900_000_000
        );
        assert_eq!(
            at_time(&serde_json::json!(1_900_000_000_000_i64))
                .unwrap()
                .unix(),
            1_900_000_000
        );
        assert_eq!(
            at_time(&serde_json::json!("2030-01-01T00:00:00Z"))
                .unwrap()
                .unix(),
            1_893_456_000
        );
    }
}
