//! Recursive descent over [`lexer`] tokens. Depth and condition counts are
//! bounded ([`MAX_DEPTH`], [`MAX_CONDITIONS`]).

use model::{SpanKind, StatusCode};
use regex::RegexBuilder;

use super::{
    Attr, Field, Lit, MAX_CONDITIONS, MAX_DEPTH, MAX_REGEX_BYTES, Op, ParseError, Spanset,
    lexer::{Tok, lex},
};

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
    conditions: usize,
}

pub(super) fn parse(text: &str) -> Result<Spanset, ParseError> {
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
        end: text.len(),
        conditions: 0,
    };
    if p.toks.is_empty() {
        return Err(ParseError::at(0, "the query is empty"));
    }
    let root = p.spansets(0)?;
    match p.toks.get(p.at) {
        None => Ok(root),
        Some((pos, Tok::Unsupported(what))) => Err(ParseError::unsupported(*pos, what)),
        Some((pos, t)) => Err(ParseError::at(*pos, format!("unexpected {}", describe(t)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("{w:?}"),
        Tok::Str(s) => format!("string {s:?}"),
        other => format!("{other:?}"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |&(p, _)| p)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).map(|(_, t)| t.clone());
        self.at += 1;
        t
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), ParseError> {
        let pos = self.pos();
        match self.next() {
            Some(ref t) if t == want => Ok(()),
            Some(Tok::Unsupported(u)) => Err(ParseError::unsupported(pos, u)),
            Some(t) => Err(ParseError::at(
                pos,
                format!("expected {what}, found {}", describe(&t)),
            )),
            None => Err(ParseError::at(pos, format!("expected {what} at the end"))),
        }
    }

    fn deeper(&self, depth: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError::at(
                self.pos(),
                format!("nested deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(depth + 1)
    }

    /// `struct ((&& | ||) struct)*`, grouping to the left.
    fn spansets(&mut self, depth: usize) -> Result<Spanset, ParseError> {
        let depth = self.deeper(depth)?;
        let mut lhs = self.structural(depth)?;
        loop {
            let op = match self.peek() {
                Some(Tok::And) => Spanset::And as fn(Box<Spanset>, Box<Spanset>) -> Spanset,
                Some(Tok::Or) => Spanset::Or,
                _ => return Ok(lhs),
            };
            self.at += 1;
            let rhs = self.structural(depth)?;
            lhs = op(Box::new(lhs), Box::new(rhs));
        }
    }

    /// `primary ((>> | >) primary)*`, grouping to the left.
    fn structural(&mut self, depth: usize) -> Result<Spanset, ParseError> {
        let mut lhs = self.primary(depth)?;
        loop {
            let op = match self.peek() {
                Some(Tok::Desc) => Spanset::Descendant as fn(Box<Spanset>, Box<Spanset>) -> Spanset,
                Some(Tok::Gt) => Spanset::Child,
                Some(Tok::Lt) => return Err(ParseError::unsupported(self.pos(), "< (parent)")),
                _ => return Ok(lhs),
            };
            self.at += 1;
            let rhs = self.primary(depth)?;
            lhs = op(Box::new(lhs), Box::new(rhs));
        }
    }

    fn primary(&mut self, depth: usize) -> Result<Spanset, ParseError> {
        let pos = self.pos();
        match self.next() {
            Some(Tok::LBrace) => {
                if self.peek() == Some(&Tok::RBrace) {
                    self.at += 1;
                    return Ok(Spanset::Filter(Field::True));
                }
                let f = self.fields(depth)?;
                self.expect(&Tok::RBrace, "'}'")?;
                Ok(Spanset::Filter(f))
            }
            Some(Tok::LParen) => {
                let s = self.spansets(depth)?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(s)
            }
            Some(Tok::Word(w)) if self.peek() == Some(&Tok::LParen) => Err(
                ParseError::unsupported(pos, &format!("{w}() (metrics and aggregates)")),
            ),
            Some(Tok::Unsupported(u)) => Err(ParseError::unsupported(pos, u)),
            Some(t) => Err(ParseError::at(
                pos,
                format!("expected '{{', found {}", describe(&t)),
            )),
            None => Err(ParseError::at(pos, "expected '{' at the end")),
        }
    }

    /// `unary ((&& | ||) unary)*` inside a filter, grouping to the left.
    fn fields(&mut self, depth: usize) -> Result<Field, ParseError> {
        let depth = self.deeper(depth)?;
        let mut lhs = self.unary(depth)?;
        loop {
            let op = match self.peek() {
                Some(Tok::And) => Field::And as fn(Box<Field>, Box<Field>) -> Field,
                Some(Tok::Or) => Field::Or,
                _ => return Ok(lhs),
            };
            self.at += 1;
            let rhs = self.unary(depth)?;
            lhs = op(Box::new(lhs), Box::new(rhs));
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Field, ParseError> {
        match self.peek() {
            Some(Tok::Not) => {
                self.at += 1;
                let depth = self.deeper(depth)?;
                Ok(Field::Not(Box::new(self.unary(depth)?)))
            }
            Some(Tok::LParen) => {
                self.at += 1;
                let f = self.fields(depth)?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(f)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Field, ParseError> {
        let pos = self.pos();
        let word = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(Tok::Unsupported(u)) => return Err(ParseError::unsupported(pos, u)),
            Some(t) => {
                return Err(ParseError::at(
                    pos,
                    format!("expected an attribute, found {}", describe(&t)),
                ));
            }
            None => return Err(ParseError::at(pos, "expected an attribute at the end")),
        };
        if word == "true" || word == "false" {
            return Ok(if word == "true" {
                Field::True
            } else {
                Field::Not(Box::new(Field::True))
            });
        }
        let attr = attr(&word, pos)?;
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(ParseError::at(
                pos,
                format!("more than {MAX_CONDITIONS} conditions"),
            ));
        }
        let op_pos = self.pos();
        let op = match self.next() {
            Some(Tok::Eq) => Ok(Op::Eq),
            Some(Tok::Ne) => Ok(Op::Ne),
            Some(Tok::Gt) => Ok(Op::Gt),
            Some(Tok::Ge) => Ok(Op::Ge),
            Some(Tok::Lt) => Ok(Op::Lt),
            Some(Tok::Le) => Ok(Op::Le),
            Some(Tok::Re) => Err(false),
            Some(Tok::NotRe) => Err(true),
            Some(Tok::Unsupported(u)) => return Err(ParseError::unsupported(op_pos, u)),
            _ => {
                return Err(ParseError::at(
                    op_pos,
                    format!("expected a comparison after {word}"),
                ));
            }
        };
        let lit_pos = self.pos();
        let lit = self.literal()?;
        match op {
            Ok(op) => {
                check(&attr, op, &lit, lit_pos)?;
                Ok(Field::Cmp(attr, op, lit))
            }
            Err(negate) => {
                let Lit::Str(pattern) = lit else {
                    return Err(ParseError::at(
                        lit_pos,
                        "a regular expression must be a string",
                    ));
                };
                if !matches!(
                    attr,
                    Attr::Name
                        | Attr::StatusMessage
                        | Attr::RootName
                        | Attr::RootServiceName
                        | Attr::Cluster
                        | Attr::Span(_)
                        | Attr::Resource(_)
                        | Attr::Any(_)
                ) {
                    return Err(ParseError::at(
                        lit_pos,
                        format!("{word} cannot be matched by a regular expression"),
                    ));
                }
                // Anchored, as Tempo's (Prometheus's) matchers are.
                let re = RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(MAX_REGEX_BYTES)
                    .dfa_size_limit(MAX_REGEX_BYTES * 4)
                    .build()
                    .map_err(|e| {
                        ParseError::at(lit_pos, format!("invalid regular expression: {e}"))
                    })?;
                Ok(Field::Regex(attr, Box::new(re), negate))
            }
        }
    }

    fn literal(&mut self) -> Result<Lit, ParseError> {
        let pos = self.pos();
        Ok(match self.next() {
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::Int(i)) => Lit::Int(i),
            Some(Tok::Float(f)) => Lit::Float(f),
            Some(Tok::Duration(d)) => Lit::Duration(d),
            Some(Tok::Word(w)) => match w.as_str() {
                "true" => Lit::Bool(true),
                "false" => Lit::Bool(false),
                "nil" => Lit::Nil,
                "error" => Lit::Status(StatusCode::Error),
                "ok" => Lit::Status(StatusCode::Ok),
                "unset" => Lit::Status(StatusCode::Unset),
                "unspecified" => Lit::Kind(SpanKind::Unspecified),
                "internal" => Lit::Kind(SpanKind::Internal),
                "server" => Lit::Kind(SpanKind::Server),
                "client" => Lit::Kind(SpanKind::Client),
                "producer" => Lit::Kind(SpanKind::Producer),
                "consumer" => Lit::Kind(SpanKind::Consumer),
                other => {
                    return Err(ParseError::at(
                        pos,
                        format!("expected a value, found {other:?} (strings are quoted)"),
                    ));
                }
            },
            Some(Tok::Unsupported(u)) => return Err(ParseError::unsupported(pos, u)),
            Some(t) => {
                return Err(ParseError::at(
                    pos,
                    format!("expected a value, found {}", describe(&t)),
                ));
            }
            None => return Err(ParseError::at(pos, "expected a value at the end")),
        })
    }
}

fn attr(word: &str, pos: usize) -> Result<Attr, ParseError> {
    let named = |rest: &str, f: fn(String) -> Attr| {
        if rest.is_empty() {
            Err(ParseError::at(pos, format!("{word:?} names no attribute")))
        } else {
            Ok(f(rest.to_owned()))
        }
    };
    if let Some(rest) = word.strip_prefix("span.") {
        return named(rest, Attr::Span);
    }
    if let Some(rest) = word.strip_prefix("resource.") {
        return named(rest, Attr::Resource);
    }
    if let Some(rest) = word.strip_prefix('.') {
        return named(rest, Attr::Any);
    }
    Ok(match word {
        "name" | "span:name" => Attr::Name,
        "status" | "span:status" => Attr::Status,
        "statusMessage" | "span:statusMessage" => Attr::StatusMessage,
        "kind" | "span:kind" => Attr::Kind,
        "duration" | "span:duration" => Attr::Duration,
        "traceDuration" | "trace:duration" => Attr::TraceDuration,
        "rootName" | "trace:rootName" => Attr::RootName,
        "rootServiceName" | "trace:rootService" => Attr::RootServiceName,
        "cluster" => Attr::Cluster,
        other => {
            let scope = other.split(['.', ':']).next().unwrap_or(other);
            return Err(match scope {
                "event" | "link" | "instrumentation" | "parent" | "trace" | "span"
                | "nestedSetParent" => ParseError::unsupported(pos, &format!("{other:?}")),
                _ => ParseError::at(
                    pos,
                    format!(
                        "unknown intrinsic {other:?} (attributes need a scope: span., resource. or .)"
                    ),
                ),
            });
        }
    })
}

/// Type checks a comparison, as Tempo's validator does.
fn check(attr: &Attr, op: Op, lit: &Lit, pos: usize) -> Result<(), ParseError> {
    let equality = matches!(op, Op::Eq | Op::Ne);
    let ok = match attr {
        Attr::Status => equality && matches!(lit, Lit::Status(_)),
        Attr::Kind => equality && matches!(lit, Lit::Kind(_)),
        Attr::Duration | Attr::TraceDuration => matches!(lit, Lit::Duration(_)),
        Attr::Name
        | Attr::StatusMessage
        | Attr::RootName
        | Attr::RootServiceName
        | Attr::Cluster => {
            matches!(lit, Lit::Str(_))
        }
        Attr::Span(_) | Attr::Resource(_) | Attr::Any(_) => match lit {
            Lit::Status(_) | Lit::Kind(_) => false,
            Lit::Nil | Lit::Bool(_) => equality,
            _ => true,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(ParseError::at(
            pos,
            format!("cannot compare {attr:?} with {lit:?} using {op:?}"),
        ))
    }
}
