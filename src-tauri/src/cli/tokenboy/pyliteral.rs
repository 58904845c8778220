//! The part of Python a TokenBoy `config.py` is written in, read without running anything:
//! assignments whose values are literals (strings, numbers, True/False/None, dicts, lists),
//! `token_sources['NAME'] = {…}` item assignments, and comments. Anything else (a call, an
//! import, an f-string, arithmetic) is an error that names its line and column.

use std::fmt;

/// A position in the file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{at}: {message}")]
pub struct SyntaxError {
    pub at: Pos,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String, Pos),
    Number(String),
    Bool(bool),
    None,
    Dict(Vec<(Value, Value)>, Pos),
    List(Vec<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s, _) => Some(s),
            _ => None,
        }
    }

    /// The value under a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Dict(items, _) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// One top-level statement that assigns a literal.
#[derive(Debug, PartialEq)]
pub enum Statement {
    /// `name = value`
    Assign { name: String, value: Value },
    /// `name['key'] = value`
    SetItem {
        name: String,
        key: String,
        value: Value,
        at: Pos,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number(String),
    Punct(char),
    Newline,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
    line_start: usize,
    /// Open brackets: newlines inside them do not end a statement.
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
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

    fn tokens(mut self) -> Result<Vec<(Token, Pos)>, SyntaxError> {
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

struct Parser {
    tokens: Vec<(Token, Pos)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &(Token, Pos) {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> (Token, Pos) {
        let t = self.peek().clone();
        self.at += 1;
        t
    }

    fn expect(&mut self, c: char, what: &str) -> Result<Pos, SyntaxError> {
        match self.next() {
            (Token::Punct(p), at) if p == c => Ok(at),
            (_, at) => Err(SyntaxError {
                at,
                message: format!("expected `{c}` {what}"),
            }),
        }
    }

    fn value(&mut self) -> Result<Value, SyntaxError> {
        let (token, at) = self.next();
        let value = match token {
            Token::Str(mut s) => {
                // Adjacent literals concatenate ('a' 'b').
                while let (Token::Str(more), _) = self.peek().clone() {
                    s.push_str(&more);
                    self.at += 1;
                }
                Value::Str(s, at)
            }
            Token::Number(n) => Value::Number(n),
            Token::Ident(i) if i == "True" => Value::Bool(true),
            Token::Ident(i) if i == "False" => Value::Bool(false),
            Token::Ident(i) if i == "None" => Value::None,
            Token::Punct('{') => {
                let mut items = Vec::new();
                loop {
                    if let (Token::Punct('}'), _) = self.peek() {
                        self.at += 1;
                        break;
                    }
                    let key = self.value()?;
                    self.expect(':', "between a key and its value")?;
                    let value = self.value()?;
                    items.push((key, value));
                    match self.next() {
                        (Token::Punct(','), _) => {}
                        (Token::Punct('}'), _) => break,
                        (_, at) => {
                            return Err(SyntaxError {
                                at,
                                message: "expected `,` or `}` in a dict".into(),
                            })
                        }
                    }
                }
                Value::Dict(items, at)
            }
            Token::Punct(open @ ('[' | '(')) => {
                let close = if open == '[' { ']' } else { ')' };
                let mut items = Vec::new();
                loop {
                    if matches!(self.peek(), (Token::Punct(c), _) if *c == close) {
                        self.at += 1;
                        break;
                    }
                    items.push(self.value()?);
                    match self.next() {
                        (Token::Punct(','), _) => {}
                        (Token::Punct(c), _) if c == close => break,
                        (_, at) => {
                            return Err(SyntaxError {
                                at,
                                message: format!("expected `,` or `{close}`"),
                            })
                        }
                    }
                }
                Value::List(items)
            }
            Token::Ident(name) => {
                return Err(SyntaxError {
                    at,
                    message: format!("`{name}` is a name, not a literal; only literal values are read (nothing in config.py is run)"),
                })
            }
            other => {
                return Err(SyntaxError {
                    at,
                    message: format!("{other:?} does not start a literal"),
                })
            }
        };
        if let (Token::Punct('(' | '['), at) = self.peek().clone() {
            return Err(SyntaxError {
                at,
                message: "calls and subscripts are not read; only literal values are".into(),
            });
        }
        Ok(value)
    }
}

/// Every statement of `text`; `import` lines and other statements without literals are errors.
pub fn parse(text: &str) -> Result<Vec<Statement>, SyntaxError> {
    let tokens = Lexer::new(text).tokens()?;
    let mut parser = Parser { tokens, at: 0 };
    let mut statements = Vec::new();
    loop {
        let (token, at) = parser.next();
        match token {
            Token::Newline if parser.at >= parser.tokens.len() => return Ok(statements),
            Token::Newline | Token::Punct(';') => continue,
            Token::Ident(name) => {
                let statement = match parser.next() {
                    (Token::Punct('='), _) => Statement::Assign {
                        name,
                        value: parser.value()?,
                    },
                    (Token::Punct('['), _) => {
                        let key = match parser.value()? {
                            Value::Str(key, _) => key,
                            _ => {
                                return Err(SyntaxError {
                                    at,
                                    message: format!("`{name}[…]` needs a string key"),
                                })
                            }
                        };
                        parser.expect(']', "after the key")?;
                        parser.expect('=', "after `]`")?;
                        Statement::SetItem {
                            name,
                            key,
                            value: parser.value()?,
                            at,
                        }
                    }
                    (_, at) => {
                        return Err(SyntaxError {
                            at,
                            message: format!("`{name}` is not assigned a literal; only `NAME = …` and `NAME['KEY'] = …` are read (nothing in config.py is run)"),
                        })
                    }
                };
                statements.push(statement);
                match parser.next() {
                    (Token::Newline | Token::Punct(';'), _) => {}
                    (_, at) => {
                        return Err(SyntaxError {
                            at,
                            message: "expected the end of the statement".into(),
                        })
                    }
                }
                if parser.at >= parser.tokens.len() {
                    return Ok(statements);
                }
            }
            other => {
                return Err(SyntaxError {
                    at,
                    message: format!("{other:?} does not start an assignment"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tokenboys_own_config() {
        let text = "token_sources = {}\nbind_ip = '0.0.0.0'\nbind_port = 8888\n\n#A comment\ntoken_sources['weixin'] = {\n    'url':'https://api.weixin.qq.com/cgi-bin/token',\n    'method':'GET',\n    'args':{\n        'grant_type':'client_credential', # trailing\n        \"appid\":'wx1',\n    },\n}\n";
        let statements = parse(text).unwrap();
        assert_eq!(statements.len(), 4);
        let Statement::SetItem { key, value, at, .. } = &statements[3] else {
            panic!("{statements:?}")
        };
        assert_eq!(key, "weixin");
        assert_eq!(at.line, 6);
        assert_eq!(
            value
                .get("args")
                .and_then(|a| a.get("appid"))
                .and_then(Value::as_str),
            Some("wx1")
        );
    }

    #[test]
    fn code_is_an_error_with_its_position() {
        for (text, line, column) in [
            ("import os\n", 1, 8),
            ("x = os.environ['A']\n", 1, 5),
            ("x = f'{a}'\n", 1, 5),
            ("x = {'a': 'b' + 'c'}\n", 1, 15),
            ("x = 'open\n", 1, 5),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!((e.at.line, e.at.column), (line, column), "{text:?}: {e}");
        }
    }
}
