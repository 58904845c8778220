//! Which headers cross the proxy, each way. Going out: the caller's headers except those
//! about one connection, ours (`Authorization` is the caller's API key, `Origin`,
//! `Referer`), the caller's `User-Agent` (replaced by Tokenwarden's own: it names a local
//! program and often its host and user, which are no business of the provider), and
//! `Cookie`. Coming back: the provider's headers except those about one connection, and
//! `Set-Cookie`. Cookies go either way only for an account with `proxy_cookies = true`:
//! a cookie sent to the API port was set for this machine, not for the provider, and a
//! provider's session cookie is a credential that outlives the token and that a key to
//! read tokens was never meant to receive.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the request (RFC 9110 7.6.1), and ours.
const NOT_FORWARDED: &[HeaderName] = &[
    header::HOST,
    header::AUTHORIZATION,
    header::CONNECTION,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::CONTENT_LENGTH,
    header::ORIGIN,
    header::REFERER,
    header::USER_AGENT,
];

/// Headers of an answer that describe its connection to us, not the answer.
const NOT_RETURNED: &[HeaderName] = &[
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TRAILER,
    header::UPGRADE,
    header::CONTENT_LENGTH,
];

/// What every proxied request says it is.
pub(super) const USER_AGENT: &str = concat!("tokenwarden/", env!("CARGO_PKG_VERSION"));

/// The caller's headers as they go to the provider; `cookies`: the account's
/// `proxy_cookies`.
pub(super) fn outgoing(headers: &HeaderMap, cookies: bool) -> HeaderMap {
    let mut out = headers.clone();
    strip_hop_by_hop(&mut out);
    for name in NOT_FORWARDED {
        out.remove(name);
    }
    if !cookies {
        out.remove(header::COOKIE);
    }
    out.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    out
}

/// The provider's headers as they go back to the caller.
pub(super) fn returned(mut headers: HeaderMap, cookies: bool) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    for name in NOT_RETURNED {
        headers.remove(name);
    }
    if !cookies {
        headers.remove(header::SET_COOKIE);
        headers.remove("set-cookie2");
    }
    headers
}

/// Headers about one connection: those the `Connection` header names (RFC 9110 7.6.1),
/// and the ones everyone knows as such.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named
        .iter()
        .map(String::as_str)
        .chain(["keep-alive", "proxy-connection"])
    {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn hop_by_hop_headers_the_callers_key_agent_and_cookies_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer twk_key".parse().unwrap());
        headers.insert(header::CONNECTION, "close, X-Trace-Hop".parse().unwrap());
        headers.insert("x-trace-hop", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-request-id", "r1".parse().unwrap());
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        headers.insert(header::COOKIE, "local=1".parse().unwrap());
        headers.insert(header::USER_AGENT, "bot/1 (host ci-7)".parse().unwrap());
        let out = outgoing(&headers, false);
        assert_eq!(names(&out), ["accept", "user-agent", "x-request-id"]);
        assert_eq!(out[header::USER_AGENT], USER_AGENT);
        let out = outgoing(&headers, true);
        assert_eq!(out[header::COOKIE], "local=1");
        assert_eq!(out[header::USER_AGENT], USER_AGENT);
    }

    #[test]
    fn the_providers_cookies_come_back_only_when_the_account_allows_them() {
        let mut headers = HeaderMap::new();
        headers.append(header::SET_COOKIE, "a=1".parse().unwrap());
        headers.append(header::SET_COOKIE, "b=2".parse().unwrap());
        headers.insert("set-cookie2", "c=3".parse().unwrap());
        headers.insert(header::CONTENT_LENGTH, "10".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(names(&returned(headers.clone(), false)), ["content-type"]);
        let kept = returned(headers, true);
        assert_eq!(kept.get_all(header::SET_COOKIE).iter().count(), 2);
        assert!(!kept.contains_key(header::CONTENT_LENGTH));
    }
}
