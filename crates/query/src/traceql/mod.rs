//! TraceQL: the part Grafana's Tempo query builder emits, and the
//! structural operators that make cross-cluster questions one query.
//!
//! Pure: [`parse`] turns text into a [`Query`], [`Query::eval`] runs it on
//! one (scope-cut, stitched) trace, [`Query::plan`] says what the store's
//! indexes can narrow. The grammar is in README.md ("TraceQL"); what it
//! does not cover is refused with a [`ParseError`] naming the part, never
//! answered approximately.
//!
//! Precedence follows Tempo's grammar (`pkg/traceql/expr.y`): inside a
//! filter and between spansets, `&&` and `||` share one level and group
//! to the left; `>>` and `>` bind tighter than both.

mod eval;
mod lexer;
mod parser;
mod plan;
#[cfg(test)]
mod tests;

use model::{SpanKind, StatusCode};
use regex::Regex;

pub use eval::Matched;
pub use plan::Plan;

/// Longest query text accepted (bytes).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most comparisons in one query: bounds evaluation per span.
pub const MAX_CONDITIONS: usize = 64;
/// Deepest nesting of parentheses and operators.
pub const MAX_DEPTH: usize = 32;
/// Largest compiled regular expression (bytes of program).
pub const MAX_REGEX_BYTES: usize = 64 * 1024;

/// Why a query was refused. `Display` is the client's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TraceQL: {message} (at byte {pos})")]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

impl ParseError {
    fn at(pos: usize, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }

    fn unsupported(pos: usize, what: &str) -> Self {
        Self::at(pos, format!("{what} is not supported by Meridian"))
    }
}

/// A parsed query: a spanset expression.
#[derive(Debug, Clone)]
pub struct Query {
    root: Spanset,
}

#[derive(Debug, Clone)]
enum Spanset {
    Filter(Field),
    /// Both sides match: their spans together.
    And(Box<Spanset>, Box<Spanset>),
    /// Either side: the union.
    Or(Box<Spanset>, Box<Spanset>),
    /// Right-hand spans whose parent is a left-hand span.
    Child(Box<Spanset>, Box<Spanset>),
    /// Right-hand spans with a left-hand ancestor.
    Descendant(Box<Spanset>, Box<Spanset>),
}

#[derive(Debug, Clone)]
enum Field {
    True,
    And(Box<Field>, Box<Field>),
    Or(Box<Field>, Box<Field>),
    Not(Box<Field>),
    Cmp(Attr, Op, Lit),
    Regex(Attr, Box<Regex>, bool),
}

/// What a comparison reads.
#[derive(Debug, Clone, PartialEq)]
enum Attr {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    TraceDuration,
    RootName,
    RootServiceName,
    /// Meridian's own: the cluster the span was received in.
    Cluster,
    Span(String),
    Resource(String),
    /// `.name`: the span's attribute, else its resource's.
    Any(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Duration(u64),
    Bool(bool),
    Status(StatusCode),
    Kind(SpanKind),
    Nil,
}

/// Parses `text`, refusing what Meridian does not evaluate.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(ParseError::at(
            0,
            format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    parser::parse(text).map(|root| Query { root })
}

/// An attribute the query reads, as Tempo names it in a span's
/// `attributes` of a search answer (`status`, `http.method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Status,
    StatusMessage,
    Kind,
    Cluster,
    Span(String),
    Resource(String),
    Any(String),
}

impl Query {
    /// The attributes a match shows with its spans: those the query
    /// compares, except the ones with a field of their own (name,
    /// durations, root names).
    pub fn shown(&self) -> Vec<Shown> {
        let mut out = Vec::new();
        spanset_attrs(&self.root, &mut out);
        out
    }
}

fn spanset_attrs(s: &Spanset, out: &mut Vec<Shown>) {
    match s {
        Spanset::Filter(f) => field_attrs(f, out),
        Spanset::And(a, b)
        | Spanset::Or(a, b)
        | Spanset::Child(a, b)
        | Spanset::Descendant(a, b) => {
            spanset_attrs(a, out);
            spanset_attrs(b, out);
        }
    }
}

fn field_attrs(f: &Field, out: &mut Vec<Shown>) {
    let attr = match f {
        Field::True => return,
        Field::And(a, b) | Field::Or(a, b) => {
            field_attrs(a, out);
            field_attrs(b, out);
            return;
        }
        Field::Not(a) => return field_attrs(a, out),
        Field::Cmp(attr, ..) | Field::Regex(attr, ..) => attr,
    };
    let shown = match attr {
        Attr::Status => Shown::Status,
        Attr::StatusMessage => Shown::StatusMessage,
        Attr::Kind => Shown::Kind,
        Attr::Cluster => Shown::Cluster,
        Attr::Span(k) => Shown::Span(k.clone()),
        Attr::Resource(k) => Shown::Resource(k.clone()),
        Attr::Any(k) => Shown::Any(k.clone()),
        Attr::Name
        | Attr::Duration
        | Attr::TraceDuration
        | Attr::RootName
        | Attr::RootServiceName => return,
    };
    if !out.contains(&shown) {
        out.push(shown);
    }
}
