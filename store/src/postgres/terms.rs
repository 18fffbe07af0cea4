//! Search terms: 32-bit hashes of what a trace can be searched by.
//!
//! A trace's summary row holds the terms of its spans in a GIN-indexed
//! array; a search asks for the rows containing all of its terms. Hashes
//! keep the index small and need no dictionary round trip; a collision
//! only adds a candidate, which the exact confirmation on the span bodies
//! then drops.

use std::collections::HashSet;

use model::{Span, TraceQuery};

/// FNV-1a over the parts, each followed by a 0xff separator (which never
/// occurs in UTF-8), folded to 32 bits.
fn hash(parts: &[&[u8]]) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    (h ^ (h >> 32)) as u32 as i32
}

fn tag_term(key: &str, value: &str) -> i32 {
    hash(&[b"t", key.as_bytes(), value.as_bytes()])
}

/// Durations in power-of-two buckets of milliseconds: 0 below 1 ms, then
/// b for [2^(b-1), 2^b) ms.
fn duration_bucket(nanos: u64) -> u8 {
    (64 - (nanos / 1_000_000).leading_zeros()) as u8
}

/// "A span of this service (and operation, when given) lasted this long":
/// min/max-duration searches need no body to rule a trace out.
fn duration_term(service: &str, operation: Option<&str>, bucket: u8) -> i32 {
    match operation {
        Some(op) => hash(&[b"do", service.as_bytes(), op.as_bytes(), &[bucket]]),
        None => hash(&[b"ds", service.as_bytes(), &[bucket]]),
    }
}

/// The tag keys indexed for one store.
#[derive(Debug, Clone)]
pub(crate) struct IndexedTags(HashSet<String>);

impl IndexedTags {
    pub(crate) fn new(extra: &[String]) -> Self {
        Self(
            crate::DEFAULT_INDEXED_TAGS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(extra.iter().cloned())
                .collect(),
        )
    }

    fn contains(&self, key: &str) -> bool {
        self.0.contains(key)
    }
}

/// Appends the terms of `span` to `out` (unsorted, with repeats). Only
/// indexed keys are turned into strings.
pub(crate) fn span_terms(span: &Span, indexed: &IndexedTags, out: &mut Vec<i32>) {
    let service = span.service_name();
    let bucket = duration_bucket(span.duration_nanos());
    out.push(duration_term(service, None, bucket));
    out.push(duration_term(service, Some(&span.name), bucket));
    for kv in span
        .attributes
        .iter()
        .chain(&span.resource.attributes)
        .chain(span.events.iter().flat_map(|e| &e.attributes))
    {
        if indexed.contains(&kv.key) {
            out.push(match &kv.value {
                model::AttrValue::Str(v) => tag_term(&kv.key, v),
                other => tag_term(&kv.key, &other.to_search_string()),
            });
        }
    }
    for (key, value) in synthetic_tags(span) {
        if indexed.contains(key) {
            out.push(tag_term(key, value));
        }
    }
}

/// Jaeger's synthetic tags of a span (see `model::span_has_tag`).
fn synthetic_tags(span: &Span) -> impl Iterator<Item = (&'static str, &'static str)> {
    let kind = span.kind.jaeger_name().map(|k| ("span.kind", k));
    let status = match span.status_code {
        model::StatusCode::Error => [Some(("error", "true")), Some(("otel.status_code", "ERROR"))],
        model::StatusCode::Ok => [Some(("otel.status_code", "OK")), None],
        model::StatusCode::Unset => [None, None],
    };
    kind.into_iter().chain(status.into_iter().flatten())
}

/// What a candidate trace of `query` must contain: every term of `all`
/// (sorted) and, when `any` is not empty, at least one of `any` (the
/// duration buckets the query's duration range covers).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct QueryTerms {
    pub(crate) all: Vec<i32>,
    pub(crate) any: Vec<i32>,
}

pub(crate) fn query_terms(query: &TraceQuery, indexed: &IndexedTags) -> QueryTerms {
    let mut terms = QueryTerms::default();
    for tag in &query.tags {
        if indexed.contains(&tag.key) {
            terms.all.push(tag_term(&tag.key, &tag.value));
        }
    }
    terms.all.sort_unstable();
    terms.all.dedup();
    // Service and operation are indexed with the span's duration bucket:
    // one term serves "service", "service + operation" and either with a
    // duration range, as the buckets the range covers.
    if let Some(service) = &query.service {
        let lo = duration_bucket(query.duration_min_nanos.unwrap_or(0));
        let hi = duration_bucket(query.duration_max_nanos.unwrap_or(u64::MAX));
        terms.any = (lo..=hi)
            .map(|b| duration_term(service, query.operation.as_deref(), b))
            .collect();
    }
    terms
}

#[cfg(test)]
mod tests {
    use model::{AttrValue, TagFilter};

    use super::*;
    use crate::testsuite::SpanBuilder;

    fn query() -> TraceQuery {
        TraceQuery {
            limit: 20,
            ..crate::testsuite::any_query()
        }
    }

    #[test]
    fn a_span_contains_the_terms_of_every_query_it_matches() {
        let indexed = IndexedTags::new(&["team".to_owned()]);
        let span = SpanBuilder::new(1, 1, "checkout")
            .name("PlaceOrder")
            .attr("http.status_code", AttrValue::Int(500))
            .attr("team", AttrValue::Str("payments".into()))
            .attr("user.id", AttrValue::Str("u-1".into()))
            .error("boom")
            .build();
        let mut terms = Vec::new();
        span_terms(&span, &indexed, &mut terms);
        let tag = |k: &str, v: &str| TagFilter {
            key: k.into(),
            value: v.into(),
        };
        let queries = [
            TraceQuery {
                service: Some("checkout".into()),
                ..query()
            },
            TraceQuery {
                service: Some("checkout".into()),
                operation: Some("PlaceOrder".into()),
                tags: vec![tag("http.status_code", "500"), tag("error", "true")],
                ..query()
            },
            TraceQuery {
                tags: vec![tag("team", "payments"), tag("user.id", "u-1")],
                ..query()
            },
        ];
        for q in &queries {
            let need = query_terms(q, &indexed);
            assert!(!need.all.is_empty() || !need.any.is_empty());
            assert!(need.all.iter().all(|t| terms.contains(t)), "{q:?}");
            assert!(
                need.any.is_empty() || need.any.iter().any(|t| terms.contains(t)),
                "{q:?}"
            );
        }
        // An unindexed key adds no term: it is confirmed on the bodies.
        let unindexed = TraceQuery {
            tags: vec![tag("user.id", "u-1")],
            ..query()
        };
        assert_eq!(query_terms(&unindexed, &indexed), QueryTerms::default());
        // Different values hash differently.
        let other = TraceQuery {
            service: Some("checkout".into()),
            operation: Some("Refund".into()),
            ..query()
        };
        let other = query_terms(&other, &indexed);
        assert!(!other.any.iter().any(|t| terms.contains(t)));
    }

    #[test]
    fn duration_ranges_select_the_buckets_a_span_falls_in() {
        let indexed = IndexedTags::new(&[]);
        // 150 ms: bucket [128, 256) ms.
        let span = SpanBuilder::new(1, 1, "db")
            .name("query")
            .at(0, 150)
            .build();
        let mut terms = Vec::new();
        span_terms(&span, &indexed, &mut terms);
        let q = |op: Option<&str>, min: Option<u64>, max: Option<u64>| TraceQuery {
            service: Some("db".into()),
            operation: op.map(str::to_owned),
            duration_min_nanos: min.map(|m| m * 1_000_000),
            duration_max_nanos: max.map(|m| m * 1_000_000),
            ..query()
        };
        let hits = |q: &TraceQuery| {
            let t = query_terms(q, &indexed);
            assert!(!t.any.is_empty());
            t.any.iter().any(|a| terms.contains(a))
        };
        for (op, min, max, expect) in [
            (Some("query"), Some(100), None, true),
            (None, Some(100), None, true),
            (Some("query"), Some(150), Some(150), true),
            (Some("query"), Some(300), None, false),
            (None, None, Some(100), false),
            (Some("other"), Some(100), None, false),
        ] {
            assert_eq!(hits(&q(op, min, max)), expect, "{op:?} {min:?} {max:?}");
        }
        assert_eq!(duration_bucket(0), 0);
        assert_eq!(duration_bucket(999_999), 0);
        assert_eq!(duration_bucket(1_000_000), 1);
        assert_eq!(duration_bucket(u64::MAX), 45);
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        assert_ne!(
            duration_term("ab", Some("c"), 1),
            duration_term("a", Some("bc"), 1)
        );
        assert_ne!(duration_term("s", None, 1), duration_term("s", Some(""), 1));
        assert_ne!(tag_term("k", "v"), tag_term("kv", ""));
    }
}
