//! The tail policy language compiled and judged: pure, shared by the
//! agent's [`super::TailSampler`] (on what one cluster holds of a trace) and
//! the gateway's cross-cluster combiner (on the digests of every cluster).
//! A decision never looks at spans, only at [`TraceFacts`].

use std::{collections::HashSet, time::Duration};

use model::{
    TraceId,
    sampling::{TailConfig, TailPolicy, TailRule},
};
use proto::otlp::{AnyValue, KeyValue, any_value};

use super::{MAX_PREDICATES, TailError, head};

/// What policies see of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceFacts {
    pub trace_id: TraceId,
    /// Earliest span start and latest span end, unix ns.
    pub first_start: u64,
    pub last_end: u64,
    pub spans: u64,
    /// [`STATUS_UNSET`] | [`STATUS_OK`] | [`STATUS_ERROR`] bits.
    pub statuses: u8,
    /// One bit per attribute predicate that some span or resource matched
    /// (only the agent knows attributes; the gateway passes 0).
    pub matched: u64,
}

/// Compiled tail policies with their rate budgets.
#[derive(Debug)]
pub struct Judge {
    policies: Vec<(u32, Node)>,
    predicates: Vec<Predicate>,
    budgets: Vec<Budget>,
    /// Policy names by index (composite sub-policies as `outer/inner`).
    names: Vec<String>,
}

impl Judge {
    pub fn new(cfg: &TailConfig) -> Result<Self, TailError> {
        let mut c = Compiler {
            names: Vec::new(),
            predicates: Vec::new(),
            budgets: 0,
        };
        let mut policies = Vec::with_capacity(cfg.policies.len());
        for p in &cfg.policies {
            let node = c.node(p, &p.name)?;
            let name = c.name(p.name.clone());
            policies.push((name, node));
        }
        Ok(Self {
            policies,
            predicates: c.predicates,
            budgets: (0..c.budgets).map(|_| Budget::default()).collect(),
            names: c.names,
        })
    }

    /// Every policy name, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name of policy `i` (from [`Self::decide`]).
    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", String::as_str)
    }

    /// The first policy that keeps the trace (its name index), or `None`:
    /// drop. Rate budgets are taken only by the policy that keeps.
    pub fn decide(&mut self, t: &TraceFacts, now: Duration) -> Option<u32> {
        for (name, node) in &self.policies {
            if let Some(by) = eval(node, t, now, &mut self.budgets) {
                return Some(by.unwrap_or(*name));
            }
        }
        None
    }

    /// The predicate bits `attrs` match.
    pub fn attribute_bits(&self, attrs: &[KeyValue]) -> u64 {
        let mut bits = 0u64;
        if self.predicates.is_empty() {
            return 0;
        }
        for kv in attrs {
            let Some(v) = kv.value.as_ref() else { continue };
            for (i, pred) in self.predicates.iter().enumerate() {
                if pred.key() == kv.key && pred.matches(v) {
                    bits |= 1 << i;
                }
            }
        }
        bits
    }
}

#[derive(Debug)]
enum Predicate {
    Str {
        key: String,
        values: HashSet<String>,
    },
    Num {
        key: String,
        min: f64,
        max: f64,
    },
    Bool {
        key: String,
        value: bool,
    },
}

impl Predicate {
    fn key(&self) -> &str {
        match self {
            Self::Str { key, .. } | Self::Num { key, .. } | Self::Bool { key, .. } => key,
        }
    }

    fn matches(&self, v: &AnyValue) -> bool {
        use any_value::Value as V;
        match (self, v.value.as_ref()) {
            (Self::Str { values, .. }, Some(V::StringValue(s))) => values.contains(s),
            (Self::Num { min, max, .. }, Some(V::IntValue(i))) => {
                let f = *i as f64;
                f >= *min && f <= *max
            }
            (Self::Num { min, max, .. }, Some(V::DoubleValue(f))) => f >= min && f <= max,
            (Self::Bool { value, .. }, Some(V::BoolValue(b))) => b == value,
            _ => false,
        }
    }
}

/// A rate budget per wall second (of the injected clock).
#[derive(Debug, Default)]
struct Budget {
    second: u64,
    used: u64,
}

impl Budget {
    fn try_take(&mut self, now: Duration, limit: u64, spans: u64) -> bool {
        let s = now.as_secs();
        if s != self.second {
            self.second = s;
            self.used = 0;
        }
        if self.used.saturating_add(spans) > limit {
            return false;
        }
        self.used += spans;
        true
    }
}

#[derive(Debug)]
enum Node {
    Always,
    Latency {
        min_ns: u64,
    },
    Status {
        mask: u8,
    },
    Predicate {
        bit: u32,
    },
    Probabilistic {
        threshold: u64,
    },
    RateLimiting {
        spans_per_second: u64,
        budget: usize,
    },
    SpanCount {
        min: u64,
        max: u64,
    },
    And(Vec<Node>),
    Composite {
        subs: Vec<CompositeSub>,
    },
}

#[derive(Debug)]
struct CompositeSub {
    name: u32,
    node: Node,
    spans_per_second: u64,
    budget: usize,
}

/// The status bits of a trace summary.
pub const STATUS_UNSET: u8 = 1;
pub const STATUS_OK: u8 = 2;
pub const STATUS_ERROR: u8 = 4;

pub fn status_bit(code: i32) -> u8 {
    match code {
        1 => STATUS_OK,
        2 => STATUS_ERROR,
        _ => STATUS_UNSET,
    }
}

struct Compiler {
    names: Vec<String>,
    predicates: Vec<Predicate>,
    budgets: usize,
}

impl Compiler {
    fn name(&mut self, n: String) -> u32 {
        self.names.push(n);
        (self.names.len() - 1) as u32
    }

    fn predicate(&mut self, p: Predicate) -> Result<Node, TailError> {
        if self.predicates.len() >= MAX_PREDICATES {
            return Err(TailError::TooManyPredicates);
        }
        self.predicates.push(p);
        Ok(Node::Predicate {
            bit: (self.predicates.len() - 1) as u32,
        })
    }

    fn budget(&mut self) -> usize {
        self.budgets += 1;
        self.budgets - 1
    }

    fn node(&mut self, p: &TailPolicy, path: &str) -> Result<Node, TailError> {
        let err = |message: &str| TailError::Policy {
            policy: path.to_owned(),
            message: message.to_owned(),
        };
        Ok(match &p.rule {
            TailRule::AlwaysSample => Node::Always,
            TailRule::Latency { threshold_ms } => Node::Latency {
                min_ns: threshold_ms.saturating_mul(1_000_000),
            },
            TailRule::StatusCode { status_codes } => {
                let mut mask = 0;
                for c in status_codes {
                    mask |= match c.to_ascii_uppercase().as_str() {
                        "OK" => STATUS_OK,
                        "ERROR" => STATUS_ERROR,
                        "UNSET" => STATUS_UNSET,
                        _ => return Err(err("status_codes take OK, ERROR or UNSET")),
                    };
                }
                if mask == 0 {
                    return Err(err("status_codes must not be empty"));
                }
                Node::Status { mask }
            }
            TailRule::StringAttribute { key, values } => {
                if values.is_empty() {
                    return Err(err("values must not be empty"));
                }
                self.predicate(Predicate::Str {
                    key: key.clone(),
                    values: values.iter().cloned().collect(),
                })?
            }
            TailRule::NumericAttribute {
                key,
                min_value,
                max_value,
            } => {
                if min_value > max_value {
                    return Err(err("min_value is above max_value"));
                }
                self.predicate(Predicate::Num {
                    key: key.clone(),
                    min: *min_value,
                    max: *max_value,
                })?
            }
            TailRule::BooleanAttribute { key, value } => self.predicate(Predicate::Bool {
                key: key.clone(),
                value: *value,
            })?,
            TailRule::Probabilistic {
                sampling_percentage,
            } => {
                if !(0.0..=100.0).contains(sampling_percentage) {
                    return Err(err("sampling_percentage must be within 0..=100"));
                }
                Node::Probabilistic {
                    threshold: head::threshold(sampling_percentage / 100.0),
                }
            }
            TailRule::RateLimiting { spans_per_second } => Node::RateLimiting {
                spans_per_second: *spans_per_second,
                budget: self.budget(),
            },
            TailRule::SpanCount {
                min_spans,
                max_spans,
            } => Node::SpanCount {
                min: *min_spans,
                max: max_spans.unwrap_or(u64::MAX),
            },
            TailRule::And { policies } => {
                if policies.is_empty() {
                    return Err(err("and needs sub-policies"));
                }
                Node::And(
                    policies
                        .iter()
                        .map(|s| self.node(s, &format!("{path}/{}", s.name)))
                        .collect::<Result<_, _>>()?,
                )
            }
            TailRule::Composite {
                max_total_spans_per_second,
                policies,
                rate_allocation,
            } => {
                if policies.is_empty() {
                    return Err(err("composite needs sub-policies"));
                }
                let allocated: f64 = rate_allocation.iter().map(|a| a.percent).sum();
                if allocated > 100.0 || rate_allocation.iter().any(|a| a.percent < 0.0) {
                    return Err(err("rate_allocation percentages must be 0..=100 in total"));
                }
                for a in rate_allocation {
                    if !policies.iter().any(|s| s.name == a.policy) {
                        return Err(err(&format!(
                            "rate_allocation names {:?}, which is not a sub-policy",
                            a.policy
                        )));
                    }
                }
                let unallocated = policies
                    .iter()
                    .filter(|s| !rate_allocation.iter().any(|a| a.policy == s.name))
                    .count();
                let rest_share = if unallocated == 0 {
                    0.0
                } else {
                    (100.0 - allocated) / unallocated as f64
                };
                let mut subs = Vec::with_capacity(policies.len());
                for s in policies {
                    let sub_path = format!("{path}/{}", s.name);
                    let node = self.node(s, &sub_path)?;
                    let pct = rate_allocation
                        .iter()
                        .find(|a| a.policy == s.name)
                        .map_or(rest_share, |a| a.percent);
                    subs.push(CompositeSub {
                        name: self.name(sub_path),
                        node,
                        spans_per_second: (*max_total_spans_per_second as f64 * pct / 100.0) as u64,
                        budget: self.budget(),
                    });
                }
                Node::Composite { subs }
            }
        })
    }
}

/// `Some(None)`: kept by this node (the caller's name applies);
/// `Some(Some(n))`: kept, named by composite sub-policy `n`; `None`: not kept.
fn eval(node: &Node, t: &TraceFacts, now: Duration, budgets: &mut [Budget]) -> Option<Option<u32>> {
    let yes = Some(None);
    match node {
        Node::Always => yes,
        Node::Latency { min_ns } => {
            (t.last_end.saturating_sub(t.first_start.min(t.last_end)) >= *min_ns).then_some(None)
        }
        Node::Status { mask } => (t.statuses & mask != 0).then_some(None),
        Node::Predicate { bit } => (t.matched & (1 << bit) != 0).then_some(None),
        Node::Probabilistic { threshold } => (*threshold == 0
            || (*threshold < head::SPACE && t.trace_id.randomness() >= *threshold))
            .then_some(None),
        Node::RateLimiting {
            spans_per_second,
            budget,
        } => budgets[*budget]
            .try_take(now, *spans_per_second, t.spans)
            .then_some(None),
        Node::SpanCount { min, max } => (t.spans >= *min && t.spans <= *max).then_some(None),
        Node::And(subs) => {
            for s in subs {
                eval(s, t, now, budgets)?;
            }
            yes
        }
        Node::Composite { subs } => {
            for s in subs {
                if eval(&s.node, t, now, budgets).is_some()
                    && budgets[s.budget].try_take(now, s.spans_per_second, t.spans)
                {
                    return Some(Some(s.name));
                }
            }
            None
        }
    }
}
