//! TokenBoy's one placeholder, `{{results.NAME.access_token}}` (or `.ticket`): another
//! source's current token, which Tokenwarden writes `{{accounts.NAME.access_token}}`.
//! Errors quote the placeholder, never the text around it, which may be a secret.

use super::pyliteral::Pos;
use super::source::{error, ImportError};
use crate::engine::AccountName;

/// A `{{results.NAME.FIELD}}` found in a string: the source it names, and where it is.
pub struct Reference<'a> {
    pub source: &'a AccountName,
    pub span: std::ops::Range<usize>,
}

impl Reference<'_> {
    /// `text` with this placeholder in Tokenwarden's words.
    pub fn translate(&self, text: &str) -> String {
        format!(
            "{}{{{{accounts.{}.access_token}}}}{}",
            &text[..self.span.start],
            self.source,
            &text[self.span.end..]
        )
    }
}

/// The first placeholder in `text` (a string of config.py at `at`), if any; one that is not
/// closed, is not TokenBoy's or names no source in `known` is an error at its position.
pub fn reference<'a>(
    text: &str,
    at: Pos,
    known: &'a [AccountName],
) -> Result<Option<Reference<'a>>, ImportError> {
    let Some(start) = text.find("{{") else {
        return Ok(None);
    };
    let inside_at = Pos {
        line: at.line,
        column: at.column + 1 + start,
    };
    let Some(end) = text[start..].find("}}") else {
        return error(inside_at, "a `{{` that is not closed");
    };
    let inside = text[start + 2..start + end].trim();
    let parts: Vec<&str> = inside.split('.').collect();
    match parts.as_slice() {
        ["results", name, "access_token" | "ticket"] => match known.iter().find(|k| k.as_str() == *name) {
            Some(source) => Ok(Some(Reference {
                source,
                span: start..start + end + 2,
            })),
            None => error(inside_at, format!("`{{{{{inside}}}}}` names source `{name}`, which is not in token_sources")),
        },
        _ => error(inside_at, format!("unknown placeholder `{{{{{inside}}}}}`; TokenBoy's are `{{{{results.NAME.access_token}}}}` (or `.ticket`)")),
    }
}
