//! `[store] kind = "redis"`: where the shared Redis is and how this host takes part. The
//! password and the store key are secrets, so the config only says where they come from:
//! a `url` with a password in it is refused.

use std::path::PathBuf;
use std::time::Duration;

use super::error::Problem;
use super::raw::RawStore;
use super::StoreKind;

/// How long a host's claim to refresh an account lasts unless renewed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
const MIN_LEASE: Duration = Duration::from_secs(1);
const MAX_LEASE: Duration = Duration::from_secs(300);
pub const DEFAULT_NAMESPACE: &str = "tokenwarden";

#[derive(Clone, Debug)]
pub struct FleetSettings {
    /// `redis://[user@]host:port[/db]` or `rediss://` for TLS; never a password.
    pub url: String,
    /// A file holding the store key (mode 0600), unless `TOKENWARDEN_STORE_KEY` is set.
    pub key_file: Option<PathBuf>,
    pub lease: Duration,
    /// The prefix of every Redis key, so one Redis can hold several fleets.
    pub namespace: String,
    /// This host's name in leases and logs (default: the machine's host name).
    pub host: Option<String>,
}

pub(super) fn resolve(kind: StoreKind, raw: &RawStore) -> Result<Option<FleetSettings>, Problem> {
    let redis_only = [
        ("url", raw.url.as_ref().map(|v| v.span())),
        ("key_file", raw.key_file.as_ref().map(|v| v.span())),
        ("lease", raw.lease.as_ref().map(|v| v.span())),
        ("namespace", raw.namespace.as_ref().map(|v| v.span())),
        ("host", raw.host.as_ref().map(|v| v.span())),
    ];
    if kind != StoreKind::Redis {
        if let Some((key, Some(span))) = redis_only.into_iter().find(|(_, s)| s.is_some()) {
            return Err(Problem::new(
                span,
                Some(key),
                format!("only a shared store has `{key}`; set `kind = \"redis\"` or remove it"),
            ));
        }
        return Ok(None);
    }
    let span = raw.kind.as_ref().map_or(0..0, |k| k.span());
    let url = raw.url.as_ref().ok_or_else(|| {
        Problem::new(
            span,
            Some("url"),
            "a redis store needs `url = \"redis://host:6379\"` (or rediss:// for TLS)",
        )
    })?;
    let parsed = url::Url::parse(url.get_ref()).map_err(|e| {
        Problem::new(
            url.span(),
            Some("url"),
            format!("not a URL ({e}), e.g. \"redis://10.0.0.5:6379\""),
        )
    })?;
    if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none() {
        return Err(Problem::new(
            url.span(),
            Some("url"),
            "must be redis://host:port or rediss://host:port (TLS)",
        ));
    }
    if parsed.password().is_some() {
        return Err(Problem::new(
            url.span(),
            Some("url"),
            "holds a password; config files are not for secrets: remove it and set TOKENWARDEN_REDIS_PASSWORD, or put it in the keychain item `store:redis-password`",
        ));
    }
    let lease = match &raw.lease {
        None => DEFAULT_LEASE,
        Some(v) => {
            let d = crate::engine::names::parse_duration(v.get_ref())
                .map_err(|e| Problem::new(v.span(), Some("lease"), e))?;
            if !(MIN_LEASE..=MAX_LEASE).contains(&d) {
                return Err(Problem::new(
                    v.span(),
                    Some("lease"),
                    "must be between 1s and 5m: long enough for a token request, short enough that another host takes over soon after this one dies",
                ));
            }
            d
        }
    };
    let namespace = match &raw.namespace {
        None => DEFAULT_NAMESPACE.to_owned(),
        Some(v) => {
            let ok = !v.get_ref().is_empty()
                && v.get_ref().len() <= 64
                && v.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !ok {
                return Err(Problem::new(
                    v.span(),
                    Some("namespace"),
                    "1 to 64 characters of letters, digits, `_`, `-` and `.`",
                ));
            }
            v.get_ref().clone()
        }
    };
    let host = match &raw.host {
        None => None,
        Some(v) if v.get_ref().trim().is_empty() || v.get_ref().len() > 128 => {
            return Err(Problem::new(
                v.span(),
                Some("host"),
                "a name of 1 to 128 characters",
            ))
        }
        Some(v) => Some(v.get_ref().trim().to_owned()),
    };
    Ok(Some(FleetSettings {
        url: url.get_ref().clone(),
        key_file: raw.key_file.as_ref().map(|v| PathBuf::from(v.get_ref())),
        lease,
        namespace,
        host,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn parse(store: &str) -> Result<Config, String> {
        Config::parse(Path::new("config.toml"), &format!("[store]\n{store}\n"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_redis_store_is_resolved_with_its_defaults() {
        let c = parse("kind = \"redis\"\nurl = \"rediss://ops@10.0.0.5:6380/2\"").unwrap();
        let f = c.fleet.expect("fleet settings");
        assert_eq!(f.url, "rediss://ops@10.0.0.5:6380/2");
        assert_eq!(f.lease, super::DEFAULT_LEASE);
        assert_eq!(f.namespace, "tokenwarden");
        assert!(f.key_file.is_none() && f.host.is_none());
        assert!(parse("kind = \"database\"").unwrap().fleet.is_none());
    }

    #[test]
    fn a_password_in_the_url_and_misplaced_keys_are_refused_where_they_are() {
        let e = parse("kind = \"redis\"\nurl = \"redis://:hunter2@db:6379\"").unwrap_err();
        assert!(
            e.contains("config.toml:3") && e.contains("TOKENWARDEN_REDIS_PASSWORD"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "the error quotes the password: {e}");
        let e = parse("kind = \"redis\"").unwrap_err();
        assert!(e.contains("needs `url"), "{e}");
        let e = parse("kind = \"redis\"\nurl = \"http://db:6379\"").unwrap_err();
        assert!(e.contains("redis://host:port"), "{e}");
        let e = parse("kind = \"keychain\"\nurl = \"redis://db:6379\"").unwrap_err();
        assert!(e.contains("only a shared store has `url`"), "{e}");
        let e = parse("kind = \"redis\"\nurl = \"redis://db\"\nlease = \"500ms\"").unwrap_err();
        assert!(e.contains("between 1s and 5m"), "{e}");
        let e = parse("kind = \"redis\"\nurl = \"redis://db\"\nnamespace = \"a b\"").unwrap_err();
        assert!(e.contains("namespace"), "{e}");
    }
}
