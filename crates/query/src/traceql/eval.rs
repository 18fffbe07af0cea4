//! Evaluation on one trace. The trace must already be cut to the caller's
//! scope: a structural operator then never sees (or reveals) a hidden span.
//! Cost is linear in spans × conditions; ancestry is resolved once per
//! span, and a parent cycle in hostile data ends the walk.

use std::collections::HashMap;

use model::{AttrValue, Span, SpanId, Trace};

use super::{Attr, Field, Lit, Op, Query, Spanset};

/// The spans of a trace the query selected (indices into `trace.spans`,
/// ascending). Empty means the trace does not match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matched {
    pub spans: Vec<usize>,
}

impl Query {
    /// Runs the query on `trace`; `None` when it does not match.
    pub fn eval(&self, trace: &Trace) -> Option<Matched> {
        let ctx = Ctx::new(trace);
        let mask = ctx.spanset(&self.root);
        let spans: Vec<usize> = mask
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.then_some(i))
            .collect();
        (!spans.is_empty()).then_some(Matched { spans })
    }
}

struct Ctx<'a> {
    spans: &'a [Span],
    parent: Vec<Option<usize>>,
    root: Option<&'a Span>,
    duration: u64,
}

impl<'a> Ctx<'a> {
    fn new(trace: &'a Trace) -> Self {
        let spans = trace.spans.as_slice();
        let by_id: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let parent = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parent_span_id
                    .and_then(|p| by_id.get(&p).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        // The root: a span without a parent id, the earliest if several.
        let root = spans
            .iter()
            .filter(|s| s.parent_span_id.is_none())
            .min_by_key(|s| s.start_unix_nano);
        let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
        Self {
            spans,
            parent,
            root,
            duration: end.saturating_sub(start),
        }
    }

    fn spanset(&self, s: &Spanset) -> Vec<bool> {
        match s {
            Spanset::Filter(f) => self.spans.iter().map(|span| self.field(f, span)).collect(),
            Spanset::And(a, b) => {
                let (a, b) = (self.spanset(a), self.spanset(b));
                if a.contains(&true) && b.contains(&true) {
                    or(a, &b)
                } else {
                    vec![false; self.spans.len()]
                }
            }
            Spanset::Or(a, b) => or(self.spanset(a), &self.spanset(b)),
            Spanset::Child(a, b) => {
                let (a, b) = (self.spanset(a), self.spanset(b));
                b.iter()
                    .enumerate()
                    .map(|(i, &m)| m && self.parent[i].is_some_and(|p| a[p]))
                    .collect()
            }
            Spanset::Descendant(a, b) => {
                let (a, b) = (self.spanset(a), self.spanset(b));
                let below = self.below(&a);
                b.iter().zip(below).map(|(&m, d)| m && d).collect()
            }
        }
    }

    /// For each span: whether one of its ancestors is in `a`. Each span is
    /// resolved once; a cycle counts as "no".
    fn below(&self, a: &[bool]) -> Vec<bool> {
        const UNKNOWN: u8 = 0;
        const NO: u8 = 1;
        const YES: u8 = 2;
        const VISITING: u8 = 3;
        let mut state = vec![UNKNOWN; self.spans.len()];
        let mut path = Vec::new();
        for start in 0..self.spans.len() {
            let mut i = start;
            // Walk up until an answer is known.
            let answer = loop {
                if state[i] == YES || state[i] == NO {
                    break state[i];
                }
                if state[i] == VISITING {
                    break NO;
                }
                state[i] = VISITING;
                path.push(i);
                match self.parent[i] {
                    None => break NO,
                    Some(p) if a[p] => break YES,
                    Some(p) => i = p,
                }
            };
            for j in path.drain(..) {
                state[j] = answer;
            }
        }
        state.into_iter().map(|s| s == YES).collect()
    }

    fn field(&self, f: &Field, span: &Span) -> bool {
        match f {
            Field::True => true,
            Field::And(a, b) => self.field(a, span) && self.field(b, span),
            Field::Or(a, b) => self.field(a, span) || self.field(b, span),
            Field::Not(a) => !self.field(a, span),
            Field::Cmp(attr, op, lit) => self.cmp(attr, *op, lit, span),
            Field::Regex(attr, re, negate) => match self.text(attr, span) {
                Some(t) => re.is_match(&t) != *negate,
                None => false,
            },
        }
    }

    fn text(&self, attr: &Attr, span: &Span) -> Option<String> {
        match self.value(attr, span)? {
            Value::Str(s) => Some(s.to_owned()),
            Value::Attr(v) => v.as_str().map(str::to_owned),
            Value::Num(_) => None,
        }
    }

    fn value<'s>(&'s self, attr: &'s Attr, span: &'s Span) -> Option<Value<'s>> {
        let root = || self.root;
        Some(match attr {
            Attr::Name => Value::Str(&span.name),
            Attr::StatusMessage => Value::Str(&span.status_message),
            Attr::Cluster => Value::Str(span.cluster.as_str()),
            Attr::RootName => Value::Str(&root()?.name),
            Attr::RootServiceName => Value::Str(root()?.service_name()),
            Attr::Duration => Value::Num(Num::U(span.duration_nanos())),
            Attr::TraceDuration => Value::Num(Num::U(self.duration)),
            Attr::Status | Attr::Kind => return None,
            Attr::Span(k) => Value::Attr(find(&span.attributes, k)?),
            Attr::Resource(k) => resource(span, k)?,
            Attr::Any(k) => match find(&span.attributes, k) {
                Some(v) => Value::Attr(v),
                None => resource(span, k)?,
            },
        })
    }

    fn cmp(&self, attr: &Attr, op: Op, lit: &Lit, span: &Span) -> bool {
        match (attr, lit) {
            (Attr::Status, Lit::Status(s)) => eq(op, span.status_code == *s),
            (Attr::Kind, Lit::Kind(k)) => eq(op, span.kind == *k),
            (_, Lit::Nil) => {
                let present = self.value(attr, span).is_some();
                eq(op, !present)
            }
            _ => match self.value(attr, span) {
                Some(v) => compare(&v, op, lit),
                None => false,
            },
        }
    }
}

enum Value<'a> {
    Str(&'a str),
    Num(Num),
    Attr(&'a AttrValue),
}

#[derive(Clone, Copy)]
enum Num {
    U(u64),
}

fn find<'s>(kvs: &'s [model::KeyValue], key: &str) -> Option<&'s AttrValue> {
    kvs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

fn resource<'s>(span: &'s Span, key: &str) -> Option<Value<'s>> {
    match find(&span.resource.attributes, key) {
        Some(v) => Some(Value::Attr(v)),
        None if key == "service.name" => Some(Value::Str(span.service_name())),
        None => None,
    }
}

fn or(mut a: Vec<bool>, b: &[bool]) -> Vec<bool> {
    for (x, &y) in a.iter_mut().zip(b) {
        *x |= y;
    }
    a
}

/// `=` is `same`, `!=` its negation; ordering operators never hold.
fn eq(op: Op, same: bool) -> bool {
    match op {
        Op::Eq => same,
        Op::Ne => !same,
        _ => false,
    }
}

fn ordered<T: PartialOrd>(op: Op, a: T, b: T) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::Lt => a < b,
        Op::Le => a <= b,
    }
}

/// A stored value against a literal. Values of different types never
/// compare (not even with `!=`), as in Tempo; integers and floats do.
#[allow(clippy::cast_precision_loss)]
fn compare(v: &Value<'_>, op: Op, lit: &Lit) -> bool {
    let text = match v {
        Value::Str(s) => Some(*s),
        Value::Attr(a) => a.as_str(),
        Value::Num(_) => None,
    };
    if let (Some(t), Lit::Str(l)) = (text, lit) {
        return ordered(op, t, l.as_str());
    }
    match (v, lit) {
        (Value::Num(Num::U(n)), Lit::Duration(d)) => ordered(op, *n, *d),
        (Value::Attr(AttrValue::Int(i)), Lit::Int(l)) => ordered(op, *i, *l),
        (Value::Attr(AttrValue::Int(i)), Lit::Float(l)) => ordered(op, *i as f64, *l),
        (Value::Attr(AttrValue::Double(d)), Lit::Int(l)) => ordered(op, *d, *l as f64),
        (Value::Attr(AttrValue::Double(d)), Lit::Float(l)) => ordered(op, *d, *l),
        (Value::Attr(AttrValue::Bool(b)), Lit::Bool(l)) => eq(op, b == l),
        _ => false,
    }
}
