//! What `doctor` asks of the engine beyond its views: whether the store takes a write and
//! gives it back, and how far a provider's clock is from ours (its `Date` header).

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::names::AccountName;
use super::secret::Secret;
use super::store::item::SecretKey;
use super::{Engine, EngineError};

mod consent;
mod findings;
mod probe;
pub use consent::ConsentProbe;
pub use findings::{Finding, Level};
pub use probe::TokenProbe;

/// A probe of the store: the time a write, a read and a delete took, or what failed.
#[derive(Clone, Debug, Serialize)]
pub struct StoreProbe {
    /// The store, in a few words ("keychain", "sealed database", "shared store").
    pub store: String,
    pub elapsed_ms: u64,
    pub error: Option<String>,
}

/// A provider's clock against ours.
#[derive(Clone, Debug, Serialize)]
pub struct ClockCheck {
    /// Where the `Date` header came from (scheme, host and port only).
    pub origin: String,
    /// Provider minus ours, in seconds (positive: the provider is ahead), allowing for the
    /// round trip.
    pub skew_seconds: Option<i64>,
    pub error: Option<String>,
}

/// Whether `dir` is ours alone, as the engine demands of its data and lock dirs: made (0700)
/// if missing, tightened if others may read it; an error names what is wrong with it.
pub fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    super::system::private::own_dir(dir, super::paths::DATA_DIR_REMEDY).map_err(|e| e.to_string())
}

impl Engine {
    /// What the provider must have registered for `name`'s consent to come back, in words;
    /// `None` for an account without a browser consent.
    pub fn redirect_to_register(&self, name: &AccountName) -> Result<Option<String>, EngineError> {
        use super::provider::oauth2::{GrantKind, Redirect};
        let account = self.account(name)?;
        let super::provider::Provider::OAuth2(spec) = &account.provider else {
            return Ok(None);
        };
        if spec.grant != GrantKind::AuthorizationCode {
            return Ok(None);
        }
        Ok(Some(match (&spec.redirect, spec.registers()) {
            (_, true) => "none: Tokenwarden registers its own client with the MCP server's authorization server (kept in the store)".to_owned(),
            (Redirect::Exact(url), false) => format!("exactly {url} (the provider compares it character by character)"),
            (Redirect::AnyLoopbackPort, false) => "http://127.0.0.1 with any port, path /callback (RFC 8252 loopback redirect; a provider that matches ports exactly needs redirect_uri set in the config)".to_owned(),
        }))
    }

    /// Writes, reads back and deletes a probe item in the machine's store.
    pub async fn probe_store(&self) -> StoreProbe {
        let store = self.shared.keychain.clone();
        let started = Instant::now();
        let key = SecretKey::Probe;
        let backing = store.backing(&key).name().to_owned();
        let value = format!("probe-{}", std::process::id());
        let outcome = async {
            store.set(key.clone(), Secret::new(value.clone())).await?;
            let read = store.get(key.clone()).await?;
            store.delete(key).await?;
            Ok::<_, super::store::item::StoreError>(read.is_some_and(|r| r.expose() == value))
        }
        .await;
        let error = match outcome {
            Ok(true) => None,
            Ok(false) => Some("the item written was not read back".to_owned()),
            Err(e) => Some(e.to_string()),
        };
        StoreProbe {
            store: backing,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error,
        }
    }

    /// The skew of the clock of `name`'s token endpoint host, from the `Date` of one request
    /// to its origin (any answer has one).
    pub async fn provider_clock(&self, name: &AccountName) -> Result<ClockCheck, EngineError> {
        let account = self.account(name)?;
        let Some(origin) = account.provider.origin().map(|o| o.to_string()) else {
            return Ok(ClockCheck {
                origin: String::new(),
                skew_seconds: None,
                error: Some(
                    "the account's endpoint is a template; its clock is not asked".to_owned(),
                ),
            });
        };
        let sent = SystemTime::now();
        let answer = self
            .shared
            .http
            .head(&origin)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let round_trip = sent.elapsed().unwrap_or_default();
        let mut check = ClockCheck {
            origin: origin.clone(),
            skew_seconds: None,
            error: None,
        };
        match answer {
            Err(e) => check.error = Some(crate::engine::network_detail(&e)),
            Ok(r) => {
                let date = r
                    .headers()
                    .get("date")
                    .and_then(|d| d.to_str().ok())
                    .and_then(|d| httpdate::parse_http_date(d).ok());
                match date {
                    None => check.error = Some("the answer had no Date header".to_owned()),
                    Some(theirs) => {
                        let ours = sent + round_trip / 2;
                        check.skew_seconds = Some(match theirs.duration_since(ours) {
                            Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
                            Err(behind) => {
                                -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX)
                            }
                        });
                    }
                }
            }
        }
        Ok(check)
    }
}
