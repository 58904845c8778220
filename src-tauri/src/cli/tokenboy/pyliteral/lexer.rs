//! Config.py's text → tokens with their positions. Newlines inside brackets do not end a
//! statement (as in Python); string prefixes (f'', b'', r'') are refused, since an f-string
//! is code.

use super::{Pos, SyntaxError};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token {
    Ident(String),
    Str(String),
    Number(String),
    Punct(char),
    Newline,
}

pub(super) struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
    line_start: usize,
    /// Open brackets: newlines inside them do not end a statement.
    depth: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            chars: text.char_indices().peekable(),
            line: 1,
            line_start: 0,
            depth: 0,
        }
    }

    fn pos(&self, offset: usize) -> Pos {
        Pos {
            line: self.line,
            column: offset - self.line_start + 1,
        }
    }

    fn error<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            at: self.pos(offset),
            message: message.into(),
        })
    }

    pub(super) fn tokens(mut self) -> Result<Vec<(Token, Pos)>, SyntaxError> {
        let mut out = Vec::new();
        while let Some((offset, c)) = self.chars.next() {
            let at = self.pos(offset);
            match c {
                '\n' => {
                    if self.depth == 0 {
                        out.push((Token::Newline, at));
                    }
                    self.line += 1;
                    self.line_start = offset + 1;
                }
                c if c.is_whitespace() => {}
                '\\' if self.chars.peek().is_some_and(|(_, n)| *n == '\n') => {
                    // An explicit line continuation.
                    let (o, _) = self.chars.next().expect("peeked");
                    self.line += 1;
                    self.line_start = o + 1;
                }
                '#' => {
                    while self.chars.peek().is_some_and(|(_, n)| *n != '\n') {
                        self.chars.next();
                    }
                }
                '\'' | '"' => out.push((Token::Str(self.string(offset, c)?), at)),
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut ident = c.to_string();
                    while let Some((_, n)) = self.chars.peek() {
                        if n.is_ascii_alphanumeric() || *n == '_' {
                            ident.push(*n);
                            self.chars.next();
                        } else {
                            break;
                        }
                    }
                    // A string prefix (f'', b'', r''…) is code or bytes, not a plain literal.
                    if self
                        .chars
                        .peek()
                        .is_some_and(|(_, n)| matches!(n, '\'' | '"'))
                    {
                        return self.error(offset, format!("`{ident}` strings are not read; use a plain '…' string"));
                    }
                    out.push((Token::Ident(ident), at));
                }
                c if c.is_ascii_digit() || c == '-' => {
                    let mut number = c.to_string();
                    while let Some((_, n)) = self.chars.peek() {
                        if n.is_ascii_alphanumeric() || *n == '.' || *n == '_' {
                            number.push(*n);
                            self.chars.next();
                        } else {
                            break;
                        }
                    }
                    out.push((Token::Number(number), at));
                }
                '{' | '[' | '(' => {
                    self.depth += 1;
                    out.push((Token::Punct(c), at));
                }
                '}' | ']' | ')' => {
                    self.depth = self.depth.saturating_sub(1);
                    out.push((Token::Punct(c), at));
                }
                ':' | ',' | '=' | ';' | '.' => out.push((Token::Punct(c), at)),
                other => return self.error(offset, format!("`{other}` is not part of a literal; only literal assignments are read (nothing in config.py is run)")),
            }
        }
        out.push((
            Token::Newline,
            Pos {
                line: self.line,
                column: 1,
            },
        ));
        Ok(out)
    }

    /// A single- or triple-quoted string with the common escapes.
    fn string(&mut self, start: usize, quote: char) -> Result<String, SyntaxError> {
        let mut triple = false;
        if self.chars.peek().is_some_and(|(_, n)| *n == quote) {
            self.chars.next();
            if self.chars.peek().is_some_and(|(_, n)| *n == quote) {
                self.chars.next();
                triple = true;
            } else {
                return Ok(String::new());
            }
        }
        let mut text = String::new();
        loop {
            let Some((offset, c)) = self.chars.next() else {
                return self.error(start, "this string is not closed");
            };
            match c {
                '\\' => {
                    let Some((_, e)) = self.chars.next() else {
                        return self.error(start, "this string is not closed");
                    };
                    match e {
                        'n' => text.push('\n'),
                        't' => text.push('\t'),
                        '\\' | '\'' | '"' => text.push(e),
                        '\n' => {}
                        other => {
                            text.push('\\');
                            text.push(other);
                        }
                    }
                }
                '\n' if !triple => {
                    return self.error(start, "this string is not closed on its line")
                }
                '\n' => {
                    text.push('\n');
                    self.line += 1;
                    self.line_start = offset + 1;
                }
                c if c == quote && !triple => return Ok(text),
                c if c == quote => {
                    let mut run = 1;
                    while run < 3 && self.chars.peek().is_some_and(|(_, n)| *n == quote) {
                        self.chars.next();
                        run += 1;
                    }
                    if run == 3 {
                        return Ok(text);
                    }
                    text.extend(std::iter::repeat_n(quote, run));
                }
                c => text.push(c),
            }
        }
    }
}
