//! Why a fetch failed, classified once: transient failures are retried with backoff,
//! permanent ones wait for the user. Messages quote the provider's error code, never a
//! body, a header or a token.

use std::time::Duration;

use crate::engine::names::AccountName;
use crate::engine::net::network_detail;

#[derive(Clone, Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("{account}: could not reach {provider} ({detail})")]
    Network {
        account: AccountName,
        provider: String,
        detail: String,
    },
    #[error("{account}: {provider} answered HTTP {status}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Http {
        account: AccountName,
        provider: String,
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error(
        "{account}: {provider} refused the grant ({code}); the account must be connected again"
    )]
    Rejected {
        account: AccountName,
        provider: String,
        code: String,
    },
    /// Refused, and the last refresh with this token was cut off after it was sent: the
    /// provider most likely rotated it, and the new one never reached the keychain.
    #[error("{account}: {provider} refused the stored refresh token ({code}): the last refresh was cut off after it was sent (Tokenwarden stopped, or its answer was lost, before the new refresh token reached the keychain), so the stored one is spent; the account must be connected again")]
    Interrupted {
        account: AccountName,
        provider: String,
        code: String,
    },
    #[error("{account}: {provider} refused the client credentials ({code}); check client_id and the client secret")]
    BadClient {
        account: AccountName,
        provider: String,
        code: String,
    },
    #[error("{account}: {provider} answered error {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Provider {
        account: AccountName,
        provider: String,
        code: String,
        message: Option<String>,
        transient: bool,
        wait: Option<Duration>,
    },
    #[error("{account}: {provider} is gone (HTTP 410): {advice}")]
    Gone {
        account: AccountName,
        provider: String,
        advice: String,
    },
    #[error("{account}: {provider} sent an answer Tokenwarden cannot use: {what}")]
    BadAnswer {
        account: AccountName,
        provider: String,
        what: String,
        /// A new refresh token found in the answer anyway: the provider may have consumed
        /// the old one, so this one must be saved before anything else.
        rotated: Option<crate::engine::secret::Secret>,
    },
    /// The answer's expiry at `field` had already passed, with nothing to tell the lifetime
    /// the provider meant (`skew`): one of the two clocks is off. Tried once more, then
    /// (`again`) left for the user, since a clock that is off stays off.
    #[error("{account}: {provider} answered a token whose `{field}` is {behind_secs} s {}, so its lifetime cannot be known: the provider's clock or this machine's is off by at least that much; {}",
        if *by_date { "before the answer's own Date header (expired by the provider's clock)" } else { "in the past by this machine's clock and the answer has no Date header to count from" },
        if *again { "tried twice, so not again until the account is refreshed or reloaded" } else { "trying once more" })]
    ClockSkew {
        account: AccountName,
        provider: String,
        field: String,
        behind_secs: u64,
        by_date: bool,
        again: bool,
    },
    #[error("{account}: not connected yet")]
    NotConnected { account: AccountName },
    #[error("{account}: no client secret in the keychain")]
    MissingSecret { account: AccountName },
    #[error("{account}: waits for `{upstream}`, which has no valid token yet")]
    Upstream {
        account: AccountName,
        upstream: AccountName,
    },
    #[error("{account}: {what}")]
    Setup { account: AccountName, what: String },
    /// The store (keychain, database or shared store) could not be read for what a refresh
    /// needs (the client secret), and no copy was in memory: tried again with backoff.
    #[error("{account}: {what}")]
    KeychainUnavailable {
        account: AccountName,
        what: String,
        /// Which store failed: it decides the remedy.
        store: crate::engine::store::item::Backing,
    },
    /// The shared store (Redis) could not be reached, or another host's lease did not end:
    /// a refresh waits for the store rather than fetching without the lease.
    #[error("{account}: {what}")]
    SharedStore { account: AccountName, what: String },
}

impl RefreshError {
    /// A request that got no answer. The message names the host, never the URL (a URL may
    /// carry a secret in its query).
    pub fn network(account: &AccountName, provider: &str, e: &reqwest::Error) -> Self {
        Self::Network {
            account: account.clone(),
            provider: provider.to_owned(),
            detail: network_detail(e),
        }
    }

    /// An answer that is not what the provider's kind promises.
    pub fn bad_answer(account: &AccountName, provider: &str, what: impl Into<String>) -> Self {
        Self::BadAnswer {
            account: account.clone(),
            provider: provider.to_owned(),
            what: what.into(),
            rotated: None,
        }
    }

    pub fn account(&self) -> &AccountName {
        match self {
            Self::Network { account, .. }
            | Self::Http { account, .. }
            | Self::Rejected { account, .. }
            | Self::Interrupted { account, .. }
            | Self::BadClient { account, .. }
            | Self::Provider { account, .. }
            | Self::Gone { account, .. }
            | Self::BadAnswer { account, .. }
            | Self::ClockSkew { account, .. }
            | Self::NotConnected { account }
            | Self::MissingSecret { account }
            | Self::Upstream { account, .. }
            | Self::Setup { account, .. }
            | Self::KeychainUnavailable { account, .. }
            | Self::SharedStore { account, .. } => account,
        }
    }

    /// Whether a retry could help without the user doing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network { .. }
            | Self::Upstream { .. }
            | Self::BadAnswer { .. }
            | Self::KeychainUnavailable { .. }
            | Self::SharedStore { .. } => true,
            Self::Http { status, .. } => matches!(status, 408 | 425 | 429 | 500..=599),
            Self::Provider { transient, .. } => *transient,
            Self::ClockSkew { again, .. } => !again,
            _ => false,
        }
    }

    /// A wait the provider asked for (Retry-After, a quota window).
    pub fn wait_hint(&self) -> Option<Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            Self::Provider { wait, .. } => *wait,
            _ => None,
        }
    }

    /// The same failure met a second time in a row: a clock skew is retried only once.
    pub fn repeated(self) -> Self {
        match self {
            Self::ClockSkew {
                account,
                provider,
                field,
                behind_secs,
                by_date,
                ..
            } => Self::ClockSkew {
                account,
                provider,
                field,
                behind_secs,
                by_date,
                again: true,
            },
            other => other,
        }
    }

    /// The provider's error code (OAuth `error`, WeChat `errcode`) or our own, for history.
    pub fn code(&self) -> String {
        match self {
            Self::Network { .. } => "network".into(),
            Self::Http { status, code, .. } => {
                code.clone().unwrap_or_else(|| format!("http_{status}"))
            }
            Self::Rejected { code, .. }
            | Self::Interrupted { code, .. }
            | Self::BadClient { code, .. }
            | Self::Provider { code, .. } => code.clone(),
            Self::Gone { .. } => "gone".into(),
            Self::BadAnswer { .. } => "bad_answer".into(),
            Self::ClockSkew { .. } => "clock_skew".into(),
            Self::NotConnected { .. } => "not_connected".into(),
            Self::MissingSecret { .. } => "missing_secret".into(),
            Self::KeychainUnavailable { .. } => "keychain_unavailable".into(),
            Self::SharedStore { .. } => "store_unavailable".into(),
            Self::Upstream { .. } => "upstream_not_ready".into(),
            Self::Setup { .. } => "setup".into(),
        }
    }
}

/// A provider's error code as it may be logged, stored and shown: at most 64 characters
/// of `[A-Za-z0-9_.-]`, else `error`. A provider's string is outside input: it may carry
/// newlines (fake log lines), escapes (terminal control) or a megabyte of anything.
pub fn code_shaped(raw: &str) -> String {
    if is_code_shaped(raw) {
        raw.to_owned()
    } else {
        "error".to_owned()
    }
}

/// Whether `raw` may be quoted as an error code (see [`code_shaped`]).
pub fn is_code_shaped(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// A provider's answer body, read up to [`bounds::MAX_ANSWER_BYTES`]: `None` when it is
/// larger (the rest is never read, so a provider cannot fill the memory).
pub async fn read_limited(
    mut response: reqwest::Response,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let limit = crate::engine::bounds::MAX_ANSWER_BYTES;
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// [`read_limited`] for a provider call: a failed read is a network error, a body over the
/// limit a bad answer.
pub async fn read_body(
    response: reqwest::Response,
    account: &AccountName,
    provider: &str,
) -> Result<Vec<u8>, RefreshError> {
    read_limited(response)
        .await
        .map_err(|e| RefreshError::network(account, provider, &e))?
        .ok_or_else(|| RefreshError::bad_answer(account, provider, too_large()))
}

/// The code an answer's bare status gets: a redirect is never followed (secrets would go
/// with it), and says so.
pub fn status_code(status: u16) -> Option<String> {
    (300..400)
        .contains(&status)
        .then(|| "redirect_not_followed".to_owned())
}

/// What a [`read_limited`] body that was too large is called in messages.
pub fn too_large() -> String {
    format!(
        "the answer is larger than {} KiB",
        crate::engine::bounds::MAX_ANSWER_BYTES / 1024
    )
}

/// Reads a Retry-After header: seconds, or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    parse_retry_after(value, crate::engine::clock::now())
}

fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    // Not bounded here: `timing::backoff` bounds every wait a provider asks for.
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_clock_skew_is_retried_once_and_names_the_account_the_field_and_the_skew() {
        let skew = super::RefreshError::ClockSkew {
            account: "custom".parse().unwrap(),
            provider: "http".into(),
            field: "data.expires_at".into(),
            behind_secs: 3600,
            by_date: false,
            again: false,
        };
        assert!(skew.is_transient());
        assert_eq!(skew.code(), "clock_skew");
        let again = skew.repeated();
        assert!(!again.is_transient(), "the second time waits for the user");
        let message = again.to_string();
        for part in ["custom:", "`data.expires_at`", "3600 s", "tried twice"] {
            assert!(message.contains(part), "{part} in {message}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_717); // Sun, 06 Nov 1994 08:48:37 GMT
        assert_eq!(
            super::parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            super::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            super::parse_retry_after("Sun, 06 Nov 1994 08:40:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            super::parse_retry_after("soon", crate::engine::clock::now()),
            None
        );
    }
}
