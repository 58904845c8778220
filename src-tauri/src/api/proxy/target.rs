//! Where a proxied request goes: the account's `api_base` and the caller's path under it,
//! never anywhere else.

use axum::http::StatusCode;
use url::Url;

use super::super::error::ApiError;
use crate::engine::TokenIn;

/// `/v1/proxy/{name}/{rest}` → (name, rest), both still percent-encoded.
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix("/v1/proxy/")?.split_once('/')
}

/// The URL under `base` for the caller's `rest` of the path and query, refused when it would
/// leave the base: dot segments (also percent-encoded), encoded slashes or backslashes, an
/// empty segment (`//host/…`), `;` path parameters (servers that route like Tomcat read
/// `..;` as `..` and `a;x/` as `a/`, so the provider's idea of the path would not be ours),
/// or anything that parses to another origin or path.
pub(super) fn target_url(
    base: &Url,
    rest: &str,
    query: Option<&str>,
    token_in: &TokenIn,
) -> Result<Url, ApiError> {
    let leaves = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "outside_api_base",
            format!("the proxied path {why}; only paths under the account's api_base are reached"),
        )
    };
    for segment in rest.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        if decoded == "." || decoded == ".." {
            return Err(leaves("has a `.` or `..` segment"));
        }
        if decoded.contains(['/', '\\']) {
            return Err(leaves("has an encoded slash or a backslash"));
        }
        if decoded.contains(';') {
            return Err(leaves("has a `;` path parameter"));
        }
        if segment.contains('#') {
            return Err(leaves("has a fragment"));
        }
    }
    if rest.starts_with('/') || rest.contains("//") {
        return Err(leaves("has an empty segment"));
    }
    let mut url = base.clone();
    let joined = format!("{}/{rest}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(None);
    let mut pairs: Vec<(String, String)> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    if let TokenIn::Query(param) = token_in {
        // The token is added when the request is sent; a caller's own value never goes.
        pairs.retain(|(k, _)| k != param);
    }
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    let same_origin = url.origin() == base.origin();
    let base_path = base.path().trim_end_matches('/');
    let under = url.path() == base_path || url.path().starts_with(&format!("{base_path}/"));
    if !same_origin || !under {
        return Err(leaves("does not stay under the base"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn under(base: &str, rest: &str, query: Option<&str>) -> Result<String, String> {
        target_url(&Url::parse(base).unwrap(), rest, query, &TokenIn::Header)
            .map(|u| u.to_string())
            .map_err(|e| e.message)
    }

    #[test]
    fn paths_stay_under_the_base() {
        assert_eq!(
            under("https://api.example/v2", "users/me", Some("a=1&b=x%20y")).unwrap(),
            "https://api.example/v2/users/me?a=1&b=x+y"
        );
        assert_eq!(
            under("https://api.example", "1/user/-/profile.json", None).unwrap(),
            "https://api.example/1/user/-/profile.json"
        );
        for bad in [
            "../oauth2/token",
            "a/../../b",
            "%2e%2e/x",
            "%2E%2e%2Fx",
            "a%2fb",
            "a%5cb",
            "a\\b",
            "/evil.example/x",
            "a//b",
            "./x",
            "x/..;/oauth2/token",
            "..;/oauth2/token",
            "x/..;a=b/y",
            "profile;jsessionid=abc",
            "x/..%3b/y",
            "x/..%3B/y",
        ] {
            assert!(
                under("https://api.example/v2", bad, None).is_err(),
                "{bad} was let through"
            );
        }
        // An absolute URL in the path is just a (strange) path under the base.
        let odd = under("https://api.example/v2", "http:/evil.example", None).unwrap();
        assert!(odd.starts_with("https://api.example/v2/"), "{odd}");
    }

    #[test]
    fn a_callers_own_token_parameter_is_dropped() {
        let url = target_url(
            &Url::parse("https://api.weixin.qq.com").unwrap(),
            "cgi-bin/user/info",
            Some("access_token=stolen&openid=o1"),
            &TokenIn::Query("access_token".into()),
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.weixin.qq.com/cgi-bin/user/info?openid=o1"
        );
    }
}
