//! The dimensions of a trace: every `key = value` fact it has.
//!
//! A trace has a fact when one of its spans does, so a dimension's share
//! is the share of traces that have it. The keys:
//!
//! | key | value |
//! |---|---|
//! | `service`, `operation`, `cluster` | of any span (`cluster` = "has a span in cluster X") |
//! | `kind` | `server`, `client`, … or `unspecified` |
//! | `status` | `error`, `ok`, `unset` |
//! | `span.<k>` | a span attribute, in its search string form |
//! | `resource.<k>` | a resource attribute (not `service.name`, `k8s.cluster.name`: those are `service` and `cluster`) |
//! | `crosses` | `A → B`: a span in cluster A has a child in cluster B |
//! | `spanCount` | the trace's span count, bucketed: `1`, `2-3`, `4-7`, … |
//!
//! Values longer than [`MAX_VALUE_CHARS`] are cut (and end in `…`).

use std::collections::{BTreeSet, HashMap};

use model::{SpanId, SpanKind, StatusCode, Trace};

/// Longest value text kept in a fact (characters).
pub const MAX_VALUE_CHARS: usize = 128;

/// The key of the structural "crosses A → B" fact.
pub const CROSSES: &str = "crosses";

pub type Fact = (String, String);

fn cut(v: String) -> String {
    if v.chars().count() <= MAX_VALUE_CHARS {
        v
    } else {
        let mut s: String = v.chars().take(MAX_VALUE_CHARS).collect();
        s.push('…');
        s
    }
}

/// The `crosses` value for an edge from cluster `from` to `to`.
pub fn crossing(from: &str, to: &str) -> String {
    format!("{from} → {to}")
}

/// The `spanCount` bucket of `n` spans: powers of two.
pub fn span_count_bucket(n: usize) -> String {
    if n <= 1 {
        return "1".to_owned();
    }
    let lo = 1usize << (usize::BITS - 1 - n.leading_zeros());
    format!("{lo}-{}", lo * 2 - 1)
}

fn kind_name(k: SpanKind) -> &'static str {
    k.jaeger_name().unwrap_or("unspecified")
}

fn status_name(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Error => "error",
        StatusCode::Ok => "ok",
        StatusCode::Unset => "unset",
    }
}

/// Every fact of `trace`, once each.
pub fn trace_facts(trace: &Trace) -> BTreeSet<Fact> {
    let mut out = BTreeSet::new();
    let mut put = |k: &str, v: String| {
        out.insert((k.to_owned(), cut(v)));
    };
    let cluster_of: HashMap<SpanId, &str> = trace
        .spans
        .iter()
        .map(|s| (s.span_id, s.cluster.as_str()))
        .collect();
    for s in &trace.spans {
        put("service", s.service_name().to_owned());
        put("operation", s.name.clone());
        put("cluster", s.cluster.as_str().to_owned());
        put("kind", kind_name(s.kind).to_owned());
        put("status", status_name(s.status_code).to_owned());
        for kv in &s.attributes {
            put(&format!("span.{}", kv.key), kv.value.to_search_string());
        }
        for kv in &s.resource.attributes {
            if kv.key == "service.name" || kv.key == "k8s.cluster.name" {
                continue;
            }
            put(&format!("resource.{}", kv.key), kv.value.to_search_string());
        }
        if let Some(parent) = s.parent_span_id.and_then(|p| cluster_of.get(&p))
            && *parent != s.cluster.as_str()
        {
            put(CROSSES, crossing(parent, s.cluster.as_str()));
        }
    }
    put("spanCount", span_count_bucket(trace.spans.len()));
    out
}

#[cfg(test)]
mod tests {
    use model::{AttrValue, KeyValue};
    use store::testsuite::{SpanBuilder, trace_id};

    use super::*;

    #[test]
    fn a_trace_has_the_facts_of_its_spans_and_its_structure() {
        let mut root = SpanBuilder::new(1, 1, "web").cluster("us-east").build();
        let mut r = (*root.resource).clone();
        r.attributes
            .push(KeyValue::string("service.version", "1.4.2"));
        root.resource = r.into();
        let db = SpanBuilder::new(1, 2, "db")
            .cluster("eu-west")
            .parent(1)
            .kind(SpanKind::Client)
            .attr("db.shard", AttrValue::Int(7))
            .error("boom")
            .build();
        let facts = trace_facts(&Trace {
            trace_id: trace_id(1),
            spans: vec![root, db],
        });
        let has = |k: &str, v: &str| facts.contains(&(k.to_owned(), v.to_owned()));
        assert!(has("service", "web") && has("service", "db"));
        assert!(has("cluster", "us-east") && has("cluster", "eu-west"));
        assert!(has("span.db.shard", "7"));
        assert!(has("resource.service.version", "1.4.2"));
        assert!(has("status", "error") && has("status", "unset"));
        assert!(has("kind", "client") && has("kind", "server"));
        assert!(has(CROSSES, "us-east → eu-west"));
        assert!(has("spanCount", "2-3"));
        assert!(!facts.iter().any(|(k, _)| k == "resource.k8s.cluster.name"));
    }

    #[test]
    fn span_counts_fall_in_power_of_two_buckets() {
        let b: Vec<String> = [1, 2, 3, 4, 7, 8, 100].map(span_count_bucket).into();
        assert_eq!(b, ["1", "2-3", "2-3", "4-7", "4-7", "8-15", "64-127"]);
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(500);
        let c = cut(long);
        assert_eq!(c.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
