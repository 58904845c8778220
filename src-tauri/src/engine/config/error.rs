//! Config errors: each names the file, line and column, the account and the key, and says
//! what is allowed, e.g.
//! `config.toml:14:12: account `fitbit`: key `provider`: unknown provider `fitbt` (known: …)`.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Located>),
}

impl ConfigError {
    /// The line of the problem, for "fix line N" remedies and the window.
    pub fn line(&self) -> Option<usize> {
        match self {
            // Line 0: a problem with the whole file (a name taken, an account missing).
            Self::Invalid(located) => (located.line > 0).then_some(located.line),
            Self::Io { .. } => None,
        }
    }
}

/// Where a problem is and what it is.
#[derive(Debug)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub account: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if let Some(account) = &self.account {
            write!(f, "account `{}`: ", shorten(account))?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{}`: ", shorten(key))?;
        }
        // toml's messages span several lines; the contract is one line per error.
        let message = self
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        f.write_str(&quoted_shortened(&message))
    }
}

/// The longest quoted value an error repeats: a 1 MB value in the file must not become a
/// 1 MB error line.
const MAX_QUOTED: usize = 60;

fn shorten(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(MAX_QUOTED) {
        None => value.into(),
        Some((end, _)) => format!("{}…", &value[..end]).into(),
    }
}

/// Every `quoted` part of a message shortened, and the whole at most a few lines long.
fn quoted_shortened(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        out.push_str(
            if i % 2 == 1 {
                shorten(part)
            } else {
                part.into()
            }
            .as_ref(),
        );
    }
    match out.char_indices().nth(4 * MAX_QUOTED * 4) {
        None => out,
        Some((end, _)) => format!("{}…", &out[..end]),
    }
}

/// A problem found while resolving, before its file position is known.
#[derive(Debug)]
pub struct Problem {
    pub span: std::ops::Range<usize>,
    pub account: Option<String>,
    pub key: Option<std::borrow::Cow<'static, str>>,
    pub message: String,
}

impl Problem {
    pub fn new(
        span: std::ops::Range<usize>,
        key: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            span,
            account: None,
            key: key.map(std::borrow::Cow::Borrowed),
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(super::line_column(text, 0), (1, 1));
        assert_eq!(super::line_column(text, 6), (2, 1));
        assert_eq!(super::line_column(text, 10), (2, 4));
    }
}
