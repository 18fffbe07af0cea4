//! The [`Judge`]: the first compiled policy that keeps a trace names it.
//! Rate budgets (`rate_limiting`, composite shares) count spans per second
//! of the time the caller passes in, and are taken only by the policy that
//! keeps.

use std::time::Duration;

use model::sampling::TailConfig;
use proto::otlp::KeyValue;

use super::{
    TailError, TraceFacts,
    compile::{Node, Predicate, compile},
};
use crate::head;

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
    /// Compiles `cfg`'s policies; the error names the policy at fault.
    pub fn new(cfg: &TailConfig) -> Result<Self, TailError> {
        let c = compile(cfg)?;
        Ok(Self {
            policies: c.policies,
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
