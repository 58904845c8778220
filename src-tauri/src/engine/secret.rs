//! Secret values in memory. Debug is redacted and there is no Display, Serialize or
//! PartialEq, so the only way out is `expose()`, which is easy to grep for and review.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::names::Deadline;

#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }
    /// Every caller is reviewed: keychain write, outgoing request, token answer, clipboard.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    /// Constant-time comparison: reported tokens and API keys are compared with this.
    pub fn same_as(&self, other: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.expose().as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The whole token set of one account. Stored as one keychain item so that a rotated
/// access + refresh pair is replaced in one write, never half.
#[derive(Clone, Debug)]
pub struct TokenSet {
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub token_type: String,
    pub scope: Option<String>,
    pub expires_at: Deadline,
    /// When it was issued: with `expires_at`, the lifetime the refresh rule works from.
    pub obtained_at: Deadline,
    /// When the refresh token itself stops working, where the provider says so.
    pub refresh_expires_at: Option<Deadline>,
    /// The provider did not say when it expires: `expires_at` is our estimate.
    pub expiry_estimated: bool,
}

/// The keychain item's JSON. Only `secrets.rs` builds or reads this.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredTokenSet {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    expires_at: i64,
    #[serde(default)]
    obtained_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    expiry_estimated: bool,
    /// Orders this set against a journal entry of the same account (`engine::journal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

impl TokenSet {
    pub(crate) fn to_stored_json(&self) -> Secret {
        self.stored_json(None)
    }

    /// The keychain item's JSON with sequence number `seq` (see `engine::store::journal::seq`).
    pub(crate) fn to_stored_json_at(&self, seq: u64) -> Secret {
        self.stored_json(Some(seq))
    }

    /// The sequence number of a stored set (0: none, written before journals existed).
    pub(crate) fn stored_seq(json: &Secret) -> u64 {
        #[derive(Deserialize)]
        struct Seq {
            #[serde(default)]
            seq: Option<u64>,
        }
        serde_json::from_str::<Seq>(json.expose())
            .ok()
            .and_then(|s| s.seq)
            .unwrap_or(0)
    }

    fn stored_json(&self, seq: Option<u64>) -> Secret {
        let stored = StoredTokenSet {
            access_token: self.access.expose().to_owned(),
            refresh_token: self.refresh.as_ref().map(|r| r.expose().to_owned()),
            token_type: Some(self.token_type.clone()),
            scope: self.scope.clone(),
            expires_at: self.expires_at.unix(),
            obtained_at: Some(self.obtained_at.unix()),
            refresh_expires_at: self.refresh_expires_at.map(|d| d.unix()),
            expiry_estimated: self.expiry_estimated,
            seq,
        };
        Secret::new(serde_json::to_string(&stored).expect("a struct of strings serializes"))
    }

    pub(crate) fn from_stored_json(json: &Secret) -> Option<Self> {
        // The error is dropped on purpose: serde's message could quote the secret.
        let stored: StoredTokenSet = serde_json::from_str(json.expose()).ok()?;
        Some(Self {
            access: Secret::new(stored.access_token),
            refresh: stored.refresh_token.map(Secret::new),
            token_type: stored.token_type.unwrap_or_else(|| "Bearer".into()),
            scope: stored.scope,
            expires_at: Deadline::from_unix(stored.expires_at),
            obtained_at: Deadline::from_unix(
                stored
                    .obtained_at
                    .unwrap_or(stored.expires_at.saturating_sub(3600)),
            ),
            refresh_expires_at: stored.refresh_expires_at.map(Deadline::from_unix),
            expiry_estimated: stored.expiry_estimated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let set = TokenSet {
            access: Secret::new("tw-canary-access"),
            refresh: Some(Secret::new("tw-canary-refresh")),
            token_type: "Bearer".into(),
            scope: None,
            expires_at: Deadline::from_unix(1),
            obtained_at: Deadline::from_unix(0),
            refresh_expires_at: None,
            expiry_estimated: false,
        };
        let text = format!("{set:?}");
        assert!(!text.contains("tw-canary"), "{text}");
    }

    #[test]
    fn stored_json_round_trips() {
        let set = TokenSet {
            access: Secret::new("a"),
            refresh: Some(Secret::new("r")),
            token_type: "Bearer".into(),
            scope: Some("x y".into()),
            expires_at: Deadline::from_unix(1_900_000_000),
            obtained_at: Deadline::from_unix(1_899_990_000),
            refresh_expires_at: Some(Deadline::from_unix(1_950_000_000)),
            expiry_estimated: true,
        };
        let back = TokenSet::from_stored_json(&set.to_stored_json()).unwrap();
        assert_eq!(back.access.expose(), "a");
        assert_eq!(back.refresh.unwrap().expose(), "r");
        assert_eq!(back.expires_at.unix(), 1_900_000_000);
        assert_eq!(back.refresh_expires_at.unwrap().unix(), 1_950_000_000);
        assert!(back.expiry_estimated);
        // A stored set from an odd source: nothing in it may overflow or panic.
        let odd = Secret::new(format!(
            r#"{{"access_token":"a","expires_at":{},"refresh_expires_at":{}}}"#,
            i64::MIN,
            i64::MAX
        ));
        let back = TokenSet::from_stored_json(&odd).unwrap();
        assert_eq!(back.expires_at.unix(), 0);
        assert_eq!(back.refresh_expires_at.unwrap(), Deadline::latest());
        assert!(Secret::new("abc").same_as("abc"));
        assert!(!Secret::new("abc").same_as("abd"));
    }
}
