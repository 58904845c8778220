//! WeChat Official Account tokens. `cgi-bin/token` hands out a new access_token on every
//! call and invalidates older ones (after a ~5 minute overlap), so only one process may
//! fetch it; `cgi-bin/stable_token` (endpoint = "stable") is not disturbed by other callers.
//! The jsapi ticket is fetched with the current access token of the account it depends on.
//! Failures come as HTTP 200 with a non-zero `errcode`.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::error::retry_after;
use super::{FetchRequest, Issued, RefreshError};
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Stable,
}

#[derive(Debug)]
pub struct TokenSpec {
    pub appid: String,
    pub base_url: Url,
    pub endpoint: Endpoint,
}

#[derive(Debug)]
pub struct TicketSpec {
    pub base_url: Url,
    pub upstream: AccountName,
    /// `jsapi` (or `wx_card`).
    pub kind: String,
}

/// WeChat's "this access_token is not (or no longer) valid": 40001 invalid or not the
/// latest, 40014 invalid, 42001 expired. A token fetch that gets one of them, or an API
/// call through the proxy, was refused the token it carried.
const TOKEN_REFUSED: [i64; 3] = [40001, 40014, 42001];

/// Every field any of these endpoints answers with.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    errcode: i64,
    /// Read for one thing only: the address WeChat saw, which 40164 names.
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    ticket: Option<String>,
    expires_in: Option<u64>,
}

impl TokenSpec {
    pub async fn fetch(&self, req: &FetchRequest<'_>) -> Result<Issued, RefreshError> {
        let secret = req
            .client_secret
            .ok_or_else(|| RefreshError::MissingSecret {
                account: req.account.clone(),
            })?;
        let request = match self.endpoint {
            Endpoint::Token => req.http.get(join(&self.base_url, "cgi-bin/token")).query(&[
                ("grant_type", "client_credential"),
                ("appid", self.appid.as_str()),
                ("secret", secret.expose()),
            ]),
            Endpoint::Stable => req
                .http
                .post(join(&self.base_url, "cgi-bin/stable_token"))
                .json(&serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": secret.expose(),
                    "force_refresh": false,
                })),
        };
        let answer = send(req, request).await?;
        let token = answer
            .access_token
            .ok_or_else(|| bad_answer(req, "no access_token in the answer"))?;
        Ok(Issued {
            access: Secret::new(token),
            refresh: None,
            token_type: "Bearer".into(),
            scope: None,
            expires: Issued::expires_in(Some(answer.expires_in.unwrap_or(7200))),
            refresh_expires_at: None,
        })
    }
}

impl TicketSpec {
    pub async fn fetch(&self, req: &FetchRequest<'_>) -> Result<Issued, RefreshError> {
        let token = req
            .upstream
            .get(&self.upstream)
            .ok_or_else(|| RefreshError::Upstream {
                account: req.account.clone(),
                upstream: self.upstream.clone(),
            })?;
        let request = req
            .http
            .get(join(&self.base_url, "cgi-bin/ticket/getticket"))
            .query(&[
                ("type", self.kind.as_str()),
                ("access_token", token.expose()),
            ]);
        let answer = send(req, request).await?;
        let ticket = answer
            .ticket
            .ok_or_else(|| bad_answer(req, "no ticket in the answer"))?;
        Ok(Issued {
            access: Secret::new(ticket),
            refresh: None,
            token_type: "jsapi_ticket".into(),
            scope: None,
            expires: Issued::expires_in(Some(answer.expires_in.unwrap_or(7200))),
            refresh_expires_at: None,
        })
    }
}

/// WeChat's daily quotas reset at midnight China Standard Time (UTC+8).
fn until_quota_reset(now: time::OffsetDateTime) -> Duration {
    let beijing = now.to_offset(time::macros::offset!(+8));
    let next_midnight = (beijing.date() + time::Duration::days(1))
        .midnight()
        .assume_offset(time::macros::offset!(+8));
    // A minute past the reset, so that a slightly fast clock here does not hit the old quota.
    Duration::try_from(next_midnight - now).unwrap_or(Duration::ZERO) + Duration::from_secs(60)
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

async fn send(
    req: &FetchRequest<'_>,
    request: reqwest::RequestBuilder,
) -> Result<Answer, RefreshError> {
    let response = request
        .send()
        .await
        .map_err(|e| RefreshError::network(req.account, req.provider, &e))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(RefreshError::Http {
            account: req.account.clone(),
            provider: req.provider.to_owned(),
            status,
            code: super::error::status_code(status),
            retry_after: retry_after(response.headers()),
        });
    }
    let body = super::error::read_body(response, req.account, req.provider).await?;
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|_| bad_answer(req, "the answer is not WeChat JSON"))?;
    if answer.errcode != 0 {
        let mut error = errcode(req, answer.errcode);
        if let (RefreshError::Provider { message, .. }, Some(ip)) =
            (&mut error, whitelist_ip(answer.errcode, &answer.errmsg))
        {
            *message = Some(format!(
                "this machine's IP is not on the account's whitelist (WeChat saw {ip}): add {ip} in the WeChat console"
            ));
        }
        return Err(error);
    }
    Ok(answer)
}

/// The caller address a 40164 names (`invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not
/// in whitelist rid: …`): an address, never the rest of `errmsg`.
fn whitelist_ip(code: i64, errmsg: &str) -> Option<std::net::IpAddr> {
    if code != 40164 {
        return None;
    }
    errmsg
        .split(|c: char| c.is_whitespace() || c == ',')
        .find_map(|word| word.parse().ok())
}

fn bad_answer(req: &FetchRequest<'_>, what: &str) -> RefreshError {
    RefreshError::bad_answer(req.account, req.provider, what)
}

/// WeChat's error codes, classified. The message is ours: `errmsg` is not quoted, as it
/// can carry caller addresses and request ids.
fn errcode(req: &FetchRequest<'_>, code: i64) -> RefreshError {
    let (transient, wait, message): (bool, Option<Duration>, &str) = match code {
        -1 => (true, None, "system busy, will retry"),
        45009 => (
            true,
            Some(until_quota_reset(time::OffsetDateTime::now_utc())),
            "daily API quota used up; retrying after it resets at midnight Beijing time (or reset it in the WeChat console)",
        ),
        45011 => (
            true,
            Some(Duration::from_secs(60)),
            "per-minute quota reached",
        ),
        c if TOKEN_REFUSED.contains(&c) && req.upstream.is_empty() => (
            false,
            None,
            "invalid credential: check the appid and appsecret",
        ),
        // The ticket's access token died under it: refresh the token, then the ticket.
        c if TOKEN_REFUSED.contains(&c) => (
            true,
            None,
            "the access token was rejected; waiting for its account to refresh",
        ),
        40013 => (false, None, "invalid appid: check client_id"),
        40125 => (
            false,
            None,
            "invalid appsecret: set the right one",
        ),
        40164 | 61004 => (
            false,
            None,
            "this machine's IP is not on the account's whitelist: add it in the WeChat console",
        ),
        89503 | 89501 => (
            false,
            None,
            "the call needs an administrator's confirmation in the WeChat console",
        ),
        41002 | 41004 => (false, None, "appid or appsecret missing from the request"),
        _ => (false, None, "see WeChat's global return codes"),
    };
    RefreshError::Provider {
        account: req.account.clone(),
        provider: req.provider.to_owned(),
        code: code.to_string(),
        message: Some(message.to_owned()),
        transient,
        wait,
    }
}

/// Whether an answer of WeChat's API refuses the access token the call carried. WeChat
/// answers HTTP 200 either way, with the refusal as an `errcode` in the JSON body.
pub fn refuses(body: &[u8]) -> bool {
    api_errcode(body).is_some_and(|c| TOKEN_REFUSED.contains(&c))
}

fn api_errcode(body: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct Coded {
        errcode: i64,
    }
    serde_json::from_slice::<Coded>(body)
        .ok()
        .map(|c| c.errcode)
}

#[cfg(test)]
mod tests {
    #[test]
    fn errcodes_are_read_from_json_only() {
        assert_eq!(
            super::api_errcode(br#"{"errcode":40001,"errmsg":"invalid"}"#),
            Some(40001)
        );
        assert_eq!(super::api_errcode(b"not json"), None);
        assert_eq!(super::api_errcode(br#"{"ok":true}"#), None);
    }

    #[test]
    fn only_the_invalid_token_errcodes_refuse_the_token() {
        for refused in [40001, 40014, 42001] {
            let body = format!(r#"{{"errcode":{refused},"errmsg":"invalid credential"}}"#);
            assert!(super::refuses(body.as_bytes()), "{refused}");
        }
        for other in [0, -1, 45009, 40164] {
            let body = format!(r#"{{"errcode":{other},"errmsg":"x"}}"#);
            assert!(!super::refuses(body.as_bytes()), "{other}");
        }
        assert!(!super::refuses(br#"{"openid":"o1"}"#));
    }

    #[test]
    fn a_40164_names_the_address_wechat_saw_and_nothing_else() {
        assert_eq!(
            super::whitelist_ip(
                40164,
                "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 6-2"
            ),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(super::whitelist_ip(40125, "invalid ip 203.0.113.7"), None);
        assert_eq!(
            super::whitelist_ip(40164, "not in whitelist rid: 6-2"),
            None
        );
    }

    #[test]
    fn quota_resets_at_beijing_midnight() {
        // 2026-11-23 15:30 UTC is 23:30 in Beijing: 30 minutes (+1 minute margin) to go.
        let now = time::macros::datetime!(2026-11-23 15:30 UTC);
        assert_eq!(
            super::until_quota_reset(now),
            std::time::Duration::from_secs(31 * 60)
        );
        // 16:00 UTC is Beijing midnight: a whole day.
        let now = time::macros::datetime!(2026-11-23 16:00 UTC);
        assert_eq!(
            super::until_quota_reset(now),
            std::time::Duration::from_secs(24 * 3600 + 60)
        );
    }

    #[test]
    fn join_keeps_a_base_path() {
        let base = url::Url::parse("http://127.0.0.1:9/prefix/").unwrap();
        assert_eq!(
            super::join(&base, "cgi-bin/token").as_str(),
            "http://127.0.0.1:9/prefix/cgi-bin/token"
        );
    }
}
