//! What the store's indexes can narrow. A plan's conditions are necessary:
//! every trace the query matches has a span that satisfies all of them, so
//! the store's answer is a superset of the matches, and each candidate is
//! confirmed by [`Query::eval`](super::Query::eval).

use model::{SpanKind, TagFilter, TraceQuery, access::Scope};

use super::{Attr, Field, Lit, Op, Query, Spanset};

/// Span conditions for the store's search, taken from one spanset filter
/// that every match needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub span_kind: Option<SpanKind>,
    pub tags: Vec<TagFilter>,
    pub duration_min_nanos: Option<u64>,
    pub duration_max_nanos: Option<u64>,
    pub cluster: Option<String>,
    /// The plan says everything the query says: each candidate matches.
    pub exact: bool,
}

impl Plan {
    fn weight(&self) -> usize {
        usize::from(self.service.is_some())
            + usize::from(self.operation.is_some())
            + usize::from(self.span_kind.is_some())
            + self.tags.len()
            + usize::from(self.duration_min_nanos.is_some())
            + usize::from(self.duration_max_nanos.is_some())
            + usize::from(self.cluster.is_some())
    }

    /// Writes the plan into a store search; the scope is narrowed to the
    /// planned cluster, never widened.
    pub fn apply(&self, q: &mut TraceQuery) {
        q.service.clone_from(&self.service);
        q.operation.clone_from(&self.operation);
        q.span_kind = self.span_kind;
        q.tags.clone_from(&self.tags);
        q.duration_min_nanos = self.duration_min_nanos;
        q.duration_max_nanos = self.duration_max_nanos;
        if let Some(c) = &self.cluster {
            q.scope = if q.scope.allows(c) {
                Scope::only([c.clone()])
            } else {
                Scope::only(Vec::<String>::new())
            };
        }
    }
}

impl Query {
    /// The store conditions for this query.
    pub fn plan(&self) -> Plan {
        let mut plan = required(&self.root);
        plan.exact = plan.exact && matches!(self.root, Spanset::Filter(_));
        plan
    }
}

/// The best plan among the filters every match needs.
fn required(s: &Spanset) -> Plan {
    match s {
        Spanset::Filter(f) => filter(f),
        Spanset::And(a, b) | Spanset::Child(a, b) | Spanset::Descendant(a, b) => {
            let (a, b) = (required(a), required(b));
            let mut best = if b.weight() > a.weight() { b } else { a };
            best.exact = false;
            best
        }
        // Neither side is needed on its own.
        Spanset::Or(..) => Plan::default(),
    }
}

fn filter(f: &Field) -> Plan {
    let mut plan = Plan {
        exact: true,
        ..Plan::default()
    };
    let mut terms = Vec::new();
    conjuncts(f, &mut terms);
    for t in terms {
        if !term(t, &mut plan) {
            plan.exact = false;
        }
    }
    plan
}

fn conjuncts<'a>(f: &'a Field, out: &mut Vec<&'a Field>) {
    match f {
        Field::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        other => out.push(other),
    }
}

/// Adds what one conjunct says to the plan; false when the plan cannot
/// say all of it.
fn term(f: &Field, plan: &mut Plan) -> bool {
    let Field::Cmp(attr, op, lit) = f else {
        return matches!(f, Field::True);
    };
    match (attr, op, lit) {
        (Attr::Resource(k), Op::Eq, Lit::Str(v))
            if k == "service.name" && plan.service.is_none() =>
        {
            plan.service = Some(v.clone());
            true
        }
        (Attr::Name, Op::Eq, Lit::Str(v)) if plan.operation.is_none() => {
            plan.operation = Some(v.clone());
            true
        }
        (Attr::Kind, Op::Eq, Lit::Kind(k)) if plan.span_kind.is_none() => {
            plan.span_kind = Some(*k);
            true
        }
        (Attr::Cluster, Op::Eq, Lit::Str(v)) if plan.cluster.is_none() => {
            plan.cluster = Some(v.clone());
            true
        }
        (Attr::Duration, Op::Ge | Op::Gt, Lit::Duration(d)) => {
            let min = if *op == Op::Gt {
                d.saturating_add(1)
            } else {
                *d
            };
            plan.duration_min_nanos = Some(plan.duration_min_nanos.map_or(min, |m| m.max(min)));
            true
        }
        (Attr::Duration, Op::Le | Op::Lt, Lit::Duration(d)) => {
            let max = if *op == Op::Lt {
                d.saturating_sub(1)
            } else {
                *d
            };
            plan.duration_max_nanos = Some(plan.duration_max_nanos.map_or(max, |m| m.min(max)));
            true
        }
        // The store keeps the service apart from the resource's tags.
        (Attr::Resource(k) | Attr::Any(k), _, _) if k == model::SERVICE_ATTRIBUTE => false,
        // The store's tag match also accepts event attributes and other
        // scopes: it narrows, and the evaluation confirms.
        (Attr::Span(k) | Attr::Resource(k) | Attr::Any(k), Op::Eq, Lit::Str(v)) => {
            plan.tags.push(TagFilter {
                key: k.clone(),
                value: v.clone(),
            });
            false
        }
        (Attr::Span(k) | Attr::Resource(k) | Attr::Any(k), Op::Eq, Lit::Int(i)) => {
            plan.tags.push(TagFilter {
                key: k.clone(),
                value: i.to_string(),
            });
            false
        }
        (Attr::Status, Op::Eq, Lit::Status(model::StatusCode::Error)) => {
            // `error=true` matches error spans (and an `error` attribute).
            plan.tags.push(TagFilter {
                key: "error".into(),
                value: "true".into(),
            });
            false
        }
        _ => false,
    }
}
