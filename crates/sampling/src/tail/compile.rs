//! Compiles tail policies (`model::sampling::TailPolicy`) into the tree a
//! [`super::Judge`] walks: names get indices (composite sub-policies as
//! `outer/inner`), attribute rules become predicate bits, rate limits get a
//! budget slot, composite shares are worked out. Every check of a policy's
//! fields happens here; the error names the policy.

use std::collections::HashSet;

use crate::head::threshold;
use model::sampling::{TailConfig, TailPolicy, TailRule};
use proto::otlp::{AnyValue, any_value};

use super::{MAX_PREDICATES, STATUS_ERROR, STATUS_OK, STATUS_UNSET, TailError};

/// The compiled policies of one [`TailConfig`].
#[derive(Debug)]
pub(super) struct Compiled {
    /// Top-level policies in order, each with its name index.
    pub(super) policies: Vec<(u32, Node)>,
    pub(super) predicates: Vec<Predicate>,
    /// Rate budget slots.
    pub(super) budgets: usize,
    /// Policy names by index.
    pub(super) names: Vec<String>,
}

/// Compiles every policy of `cfg`.
pub(super) fn compile(cfg: &TailConfig) -> Result<Compiled, TailError> {
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
    Ok(Compiled {
        policies,
        predicates: c.predicates,
        budgets: c.budgets,
        names: c.names,
    })
}

#[derive(Debug)]
pub(super) enum Predicate {
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
    pub(super) fn key(&self) -> &str {
        match self {
            Self::Str { key, .. } | Self::Num { key, .. } | Self::Bool { key, .. } => key,
        }
    }

    pub(super) fn matches(&self, v: &AnyValue) -> bool {
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

/// One compiled policy.
#[derive(Debug)]
pub(super) enum Node {
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

/// A sub-policy of a composite with its share of the budget.
#[derive(Debug)]
pub(super) struct CompositeSub {
    pub(super) name: u32,
    pub(super) node: Node,
    pub(super) spans_per_second: u64,
    pub(super) budget: usize,
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
                    threshold: threshold(sampling_percentage / 100.0),
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
