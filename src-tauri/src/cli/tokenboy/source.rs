//! What the importer's parts share: a checked `token_sources` entry, how an import error is
//! written (its position in config.py, never a value), and a TOML string.

use url::Url;

use super::pyliteral::{Pos, Value};
use crate::engine::AccountName;

#[derive(Debug, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ImportError {
    pub at: Pos,
    pub message: String,
}

pub(super) fn error<T>(at: Pos, message: impl Into<String>) -> Result<T, ImportError> {
    Err(ImportError {
        at,
        message: message.into(),
    })
}

/// One `token_sources` entry, checked: where it is in config.py, and its arguments as written.
pub(super) struct Source<'a> {
    pub(super) name: AccountName,
    pub(super) at: Pos,
    pub(super) url: Url,
    pub(super) method: String,
    pub(super) args: Vec<(&'a str, &'a Value)>,
}

/// `s` as a TOML string, quoted and escaped.
pub(super) fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
