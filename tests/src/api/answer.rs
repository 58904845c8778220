//! [`Answer`], one answer of the API with the request that got it, and the checks tests make on
//! it (status, JSON body, the error shape).

use std::fmt;

use serde_json::Value;

/// One answer of the API, with the request that got it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub method: String,
    pub target: String,
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.target.chars().take(200).collect();
        let more = if self.target.len() > 200 { "…" } else { "" };
        write!(f, "{} {shown}{more} → HTTP {}", self.method, self.status)?;
        for (k, v) in &self.headers {
            write!(f, "\n  {k}: {v}")?;
        }
        let body: String = self.body.chars().take(2000).collect();
        write!(f, "\n  body: {body}")
    }
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the whole answer when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}):\n{self}"))
    }

    /// Panics unless the status is `status`; returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status:\n{self}");
        self.json()
    }

    /// Panics unless this is a contract error answer: `status`, a JSON object with the string
    /// `error` equal to `code` and a non-empty string `message`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        if let Some(problem) = self.error_problem(status, code) {
            panic!("{problem}:\n{self}");
        }
    }

    /// Panics unless the body is `{"error": "<code>", "message": "<text>", …}` with a JSON
    /// content type.
    #[track_caller]
    pub fn assert_error_shape(&self) {
        if let Some(problem) = self.error_shape_problem() {
            panic!("{problem}:\n{self}");
        }
    }

    /// What is wrong with this answer as the contract error `status` `code`, if anything.
    pub fn error_problem(&self, status: u16, code: &str) -> Option<String> {
        if self.status != status {
            return Some(format!(
                "expected {status} {code}, got HTTP {}",
                self.status
            ));
        }
        if let Some(p) = self.error_shape_problem() {
            return Some(p);
        }
        let got = self.json()["error"].clone();
        (got != code).then(|| format!("expected error code {code}, got {got}"))
    }

    /// What is wrong with this answer as a contract error answer, if anything.
    pub fn error_shape_problem(&self) -> Option<String> {
        let ct = self.header("content-type").unwrap_or("");
        if !ct.starts_with("application/json") {
            return Some(format!(
                "an error answer must be JSON, got content-type {ct:?}"
            ));
        }
        let Ok(v) = serde_json::from_str::<Value>(&self.body) else {
            return Some("an error answer must be JSON, the body is not".into());
        };
        if v.get("error")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Some("an error answer names a code in `error`".into());
        }
        if v.get("message")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Some("an error answer explains itself in `message`".into());
        }
        None
    }

    /// The `access_token` of a token answer (panics unless 200 and a string).
    #[track_caller]
    pub fn access_token(&self) -> String {
        let v = self.expect(200);
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token:\n{self}"))
            .to_string()
    }
}
