//! Where `/v1/proxy/{name}/…` sends an account's requests (`api_base`, else the preset's API),
//! how the token goes with them (`token_in`: a bearer header, or a query parameter as
//! WeChat wants it), and whether cookies pass (`proxy_cookies`, off unless set).

use url::Url;

use super::error::Problem;
use super::raw::RawAccount;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// Requests go to this URL's scheme, host and port, under its path; nowhere else.
    pub base: Url,
    pub token_in: TokenIn,
    /// WeChat says a token is refused with an `errcode` inside an HTTP 200.
    pub errcodes: bool,
    /// `Cookie` goes to the provider and `Set-Cookie` comes back: only when the account says
    /// so, for an API that needs its own session cookie besides the token.
    pub cookies: bool,
    /// One harmless call that shows whether a token works (`doctor`): `probe_url`, else the
    /// preset's (a "who am I" call under the base).
    pub probe: Option<Url>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenIn {
    /// `Authorization: Bearer <token>`.
    Header,
    /// `?<name>=<token>`.
    Query(String),
}

/// The preset's API, when it has one everyone uses.
fn preset_base(preset: &str) -> Option<&'static str> {
    Some(match preset {
        // Fitbit data is served by the Google Health API.
        "fitbit" => "https://health.googleapis.com",
        "fitbit-legacy" => "https://api.fitbit.com",
        "google" => "https://www.googleapis.com",
        "microsoft" => "https://graph.microsoft.com",
        "github" => "https://api.github.com",
        "spotify" => "https://api.spotify.com",
        "strava" => "https://www.strava.com/api/v3",
        "wechat" => "https://api.weixin.qq.com",
        _ => return None,
    })
}

/// The preset's harmless "who am I" call, under its API base.
fn preset_probe(preset: &str) -> Option<&'static str> {
    Some(match preset {
        "fitbit-legacy" => "1/user/-/profile.json",
        "google" => "oauth2/v3/userinfo",
        "microsoft" => "v1.0/me",
        "github" => "user",
        "spotify" => "v1/me",
        "strava" => "athlete",
        "wechat" => "cgi-bin/get_api_domain_ip",
        _ => return None,
    })
}

/// `None` for an account nothing can be proxied to (no `api_base`, and a preset without one).
pub(super) fn resolve(raw: &RawAccount) -> Result<Option<ProxyTarget>, Problem> {
    let preset = raw.provider.get_ref().as_str();
    let wechat = preset == "wechat";
    let base = match super::fields::url(&raw.api_base, "api_base", raw)? {
        Some(base) => base,
        // A WeChat account on another base (a test server, a relay) has its API there too.
        None if wechat => match super::fields::url(&raw.base_url, "base_url", raw)? {
            Some(base) => base,
            None => Url::parse(preset_base(preset).expect("wechat has one")).expect("valid"),
        },
        None => match preset_base(preset) {
            Some(base) => Url::parse(base).expect("preset bases are valid"),
            None => {
                let set = [
                    ("token_in", raw.token_in.as_ref().map(|t| t.span())),
                    (
                        "proxy_cookies",
                        raw.proxy_cookies.as_ref().map(|c| c.span()),
                    ),
                    ("probe_url", raw.probe_url.as_ref().map(|p| p.span())),
                ];
                if let Some((key, Some(span))) = set.into_iter().find(|(_, span)| span.is_some()) {
                    return Err(Problem::new(
                        span,
                        Some(key),
                        format!("provider `{preset}` has no API to proxy to; set `api_base` too"),
                    ));
                }
                return Ok(None);
            }
        },
    };
    if let Some(api_base) = &raw.api_base {
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err(Problem::new(
                api_base.span(),
                Some("api_base"),
                "must be a scheme, a host and at most a path: no user, query or fragment",
            ));
        }
    }
    let token_in = match &raw.token_in {
        None if wechat => TokenIn::Query("access_token".into()),
        None => TokenIn::Header,
        Some(t) => parse_token_in(t.get_ref())
            .ok_or_else(|| Problem::new(t.span(), Some("token_in"), format!("`{}` is not a place for the token; use \"header\" (Authorization: Bearer) or \"query:NAME\" (e.g. \"query:access_token\")", t.get_ref())))?,
    };
    let probe = match super::fields::url(&raw.probe_url, "probe_url", raw)? {
        Some(url) => Some(url),
        None => preset_probe(preset).and_then(|path| {
            let mut under = base.clone();
            if !under.path().ends_with('/') {
                under.set_path(&format!("{}/", under.path()));
            }
            under.join(path).ok()
        }),
    };
    Ok(Some(ProxyTarget {
        base,
        token_in,
        errcodes: wechat,
        cookies: raw.proxy_cookies.as_ref().is_some_and(|c| *c.get_ref()),
        probe,
    }))
}

fn parse_token_in(text: &str) -> Option<TokenIn> {
    match text.trim() {
        "header" => Some(TokenIn::Header),
        other => {
            let name = other.strip_prefix("query:")?;
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            ok.then(|| TokenIn::Query(name.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_in_is_a_header_or_a_named_query_parameter() {
        assert_eq!(parse_token_in("header"), Some(TokenIn::Header));
        assert_eq!(
            parse_token_in("query:access_token"),
            Some(TokenIn::Query("access_token".into()))
        );
        for bad in ["query:", "query:a b", "cookie", "query:a&b=c", ""] {
            assert_eq!(parse_token_in(bad), None, "{bad:?}");
        }
    }
}
