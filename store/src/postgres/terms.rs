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

fn service_term(service: &str) -> i32 {
    hash(&[b"s", service.as_bytes()])
}

fn operation_term(service: &str, operation: &str) -> i32 {
    hash(&[b"o", service.as_bytes(), operation.as_bytes()])
}

fn tag_term(key: &str, value: &str) -> i32 {
    hash(&[b"t", key.as_bytes(), value.as_bytes()])
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
    out.push(service_term(service));
    out.push(operation_term(service, &span.name));
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

/// The terms every candidate trace of `query` must contain, sorted.
pub(crate) fn query_terms(query: &TraceQuery, indexed: &IndexedTags) -> Vec<i32> {
    let mut terms = Vec::new();
    match (&query.service, &query.operation) {
        (Some(s), Some(o)) => terms.push(operation_term(s, o)),
        (Some(s), None) => terms.push(service_term(s)),
        _ => {}
    }
    for tag in &query.tags {
        if indexed.contains(&tag.key) {
            terms.push(tag_term(&tag.key, &tag.value));
        }
    }
    terms.sort_unstable();
    terms.dedup();
    terms
}

#[cfg(test)]
mod tests {
    use model::{AttrValue, TagFilter};

    use super::*;
    use crate::testsuite::{MS, SpanBuilder, T0};

    fn query() -> TraceQuery {
        TraceQuery {
            service: None,
            operation: None,
            span_kind: None,
            tags: Vec::new(),
            start_min_unix_nano: T0,
            start_max_unix_nano: T0 + MS,
            duration_min_nanos: None,
            duration_max_nanos: None,
            limit: 20,
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
            assert!(!need.is_empty());
            assert!(need.iter().all(|t| terms.contains(t)), "{q:?}");
        }
        // An unindexed key adds no term: it is confirmed on the bodies.
        let unindexed = TraceQuery {
            tags: vec![tag("user.id", "u-1")],
            ..query()
        };
        assert!(query_terms(&unindexed, &indexed).is_empty());
        // Different values hash differently.
        let other = TraceQuery {
            service: Some("checkout".into()),
            operation: Some("Refund".into()),
            ..query()
        };
        assert!(!terms.contains(&query_terms(&other, &indexed)[0]));
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        assert_ne!(operation_term("ab", "c"), operation_term("a", "bc"));
        assert_ne!(tag_term("k", "v"), service_term("kv"));
    }
}
