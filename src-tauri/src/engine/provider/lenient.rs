//! A forgiving reading of an OAuth 2.0 token answer, for 2xx answers the oauth2 crate
//! refuses (`expires_in` as a string, no `token_type`, an odd content type). A provider
//! that rotates refresh tokens has consumed the old one by the time it answers 2xx, so the
//! new one must be kept even when the rest of the answer is unusable.

use serde_json::Value;

use super::Issued;
use crate::engine::names::Deadline;
use crate::engine::secret::Secret;

pub struct Answer {
    access: Option<Secret>,
    refresh: Option<Secret>,
    token_type: Option<String>,
    scope: Option<String>,
    expires_in: Option<u64>,
    pub refresh_expires_at: Option<Deadline>,
}

/// `None` when the body is not a JSON object. Never quotes the body.
pub fn parse(body: &[u8]) -> Option<Answer> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let text = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let seconds = |key: &str| match object.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let refresh_expires_in =
        seconds("refresh_token_expires_in").or_else(|| seconds("refresh_expires_in"));
    Some(Answer {
        access: text("access_token").map(Secret::new),
        refresh: text("refresh_token").map(Secret::new),
        token_type: text("token_type"),
        scope: text("scope"),
        expires_in: seconds("expires_in"),
        // Some providers give a date instead (unix seconds).
        refresh_expires_at: refresh_expires_in.map(Issued::deadline_in).or_else(|| {
            seconds("refresh_token_expires_at")
                .map(|at| Deadline::from_unix(i64::try_from(at).unwrap_or(i64::MAX)))
        }),
    })
}

impl Answer {
    /// A usable token, or the rotated refresh token (if any) to keep anyway.
    pub fn into_issued(self) -> Result<Issued, Option<Secret>> {
        let Some(access) = self.access else {
            return Err(self.refresh);
        };
        Ok(Issued {
            access,
            refresh: self.refresh,
            token_type: match self.token_type {
                Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
                Some(t) => t,
                None => "Bearer".to_owned(),
            },
            scope: self.scope,
            expires: Issued::expires_in(self.expires_in),
            refresh_expires_at: self.refresh_expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_expires_in_and_no_token_type_still_give_a_token() {
        let body = br#"{"access_token":"a1","refresh_token":"r2","expires_in":"3600"}"#;
        let issued = parse(body).unwrap().into_issued().ok().unwrap();
        assert_eq!(issued.refresh.unwrap().expose(), "r2");
        assert_eq!(issued.token_type, "Bearer");
        let crate::engine::provider::Expires::At(at) = issued.expires else {
            panic!("a stated lifetime: {:?}", issued.expires);
        };
        let left = at.remaining(crate::engine::clock::now()).as_secs();
        assert!((3590..=3600).contains(&left), "{left}");
    }

    #[test]
    fn no_access_token_still_yields_the_rotated_refresh_token() {
        let body = br#"{"refresh_token":"r2","expires_in":3600}"#;
        let rotated = parse(body).unwrap().into_issued().err().unwrap();
        assert_eq!(rotated.unwrap().expose(), "r2");
        assert!(parse(b"<html>").is_none());
    }
}
