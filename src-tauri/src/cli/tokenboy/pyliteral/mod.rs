//! The part of Python a TokenBoy `config.py` is written in, read without running anything:
//! assignments whose values are literals (strings, numbers, True/False/None, dicts, lists),
//! `token_sources['NAME'] = {…}` item assignments, and comments. Anything else (a call, an
//! import, an f-string, arithmetic, brackets nested deeper than [`MAX_DEPTH`]) is an error
//! that names its line and column.
//! * `lexer` text → tokens with their positions

mod lexer;

use std::fmt;

use lexer::{Lexer, Token};

/// How deep brackets may nest. The parser recurses once per bracket, so a hostile file of
/// 20,000 `[` would overflow the stack and abort; TokenBoy's own configs nest three deep.
pub const MAX_DEPTH: usize = 64;

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

struct Parser {
    tokens: Vec<(Token, Pos)>,
    at: usize,
    /// Brackets open around the value being read.
    depth: usize,
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
            Token::Punct(open @ ('{' | '[' | '(')) => {
                if self.depth == MAX_DEPTH {
                    return Err(SyntaxError {
                        at,
                        message: format!(
                            "more than {MAX_DEPTH} brackets inside each other; a TokenBoy config needs three"
                        ),
                    });
                }
                self.depth += 1;
                let value = if open == '{' {
                    self.dict(at)
                } else {
                    self.list(if open == '[' { ']' } else { ')' })
                };
                self.depth -= 1;
                value?
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

    /// The rest of a dict whose `{` is at `at`.
    fn dict(&mut self, at: Pos) -> Result<Value, SyntaxError> {
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
        Ok(Value::Dict(items, at))
    }

    /// The rest of a list or tuple, up to `close`.
    fn list(&mut self, close: char) -> Result<Value, SyntaxError> {
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
        Ok(Value::List(items))
    }
}

/// Every statement of `text`; `import` lines and other statements without literals are errors.
pub fn parse(text: &str) -> Result<Vec<Statement>, SyntaxError> {
    let tokens = Lexer::new(text).tokens()?;
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
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
    fn brackets_nest_64_deep_and_the_65th_is_an_error_at_its_position() {
        for (open, close) in [("[", "]"), ("(", ")"), ("{'k':", "}")] {
            let deep_enough = format!("x = {}1{}\n", open.repeat(64), close.repeat(64));
            assert!(parse(&deep_enough).is_ok(), "{open} 64 deep");
            let hostile = format!("\nx = {}1{}\n", open.repeat(20_000), close.repeat(20_000));
            let e = parse(&hostile).unwrap_err();
            assert_eq!((e.at.line, e.at.column), (2, 5 + 64 * open.len()), "{e}");
            assert!(e.message.contains("64"), "{e}");
        }
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
