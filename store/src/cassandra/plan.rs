//! The plan a search follows: which index gives the candidates, how many
//! are considered, and how confirmed traces are ranked.

use std::collections::HashMap;

use model::{Span, TraceId, TraceQuery};

use super::rows::{IndexedTags, clamp_i64, hour_bucket, index_key};

/// The duration index is only walked for windows of at most this many hours;
/// longer windows use another index and confirm durations on the spans.
pub(crate) const MAX_DURATION_HOURS: u64 = 7 * 24;
/// Candidate traces scanned per search: 20 × limit, at most this.
pub(crate) const MAX_CANDIDATES: usize = 10_000;
pub(crate) const CANDIDATES_PER_RESULT: usize = 20;

/// Which index a search reads its candidates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// `tag_index` for an indexed `key=value` (cut like the written keys).
    Tag {
        key: String,
        value: String,
    },
    /// `duration_index` over these hours, newest first; `operation` is
    /// `""` when the query names none.
    Duration {
        operation: String,
        hours: Vec<i64>,
        min: i64,
        max: i64,
    },
    ServiceOperation {
        operation: String,
    },
    Service,
}

/// How a search runs. The service (the query's, else every service) is
/// part of every index key and is filled in by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) lookup: Lookup,
    /// Inclusive start-time window, nanoseconds.
    pub(crate) start_min: i64,
    pub(crate) start_max: i64,
    /// Distinct candidate traces considered at most.
    pub(crate) max_candidates: usize,
}

/// Indexed keys whose values are shared by most spans: an index scan on
/// them narrows little, so other indexes are preferred.
const BROAD_TAGS: &[&str] = &[
    "span.kind",
    "otel.status_code",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "http.method",
    "http.request.method",
];

/// The plan for `query`; `None` when nothing can match (empty window,
/// inverted duration range, limit 0).
pub(crate) fn plan(query: &TraceQuery, indexed: &IndexedTags) -> Option<Plan> {
    if query.limit == 0
        || query.start_min_unix_nano > query.start_max_unix_nano
        || query.scope.clusters().is_some_and(|c| c.is_empty())
        || query
            .duration_min_nanos
            .zip(query.duration_max_nanos)
            .is_some_and(|(lo, hi)| lo > hi)
    {
        return None;
    }
    let max_candidates = query
        .limit
        .saturating_mul(CANDIDATES_PER_RESULT)
        .clamp(1, MAX_CANDIDATES);
    let tag = |broad: bool| {
        query
            .tags
            .iter()
            .find(|t| indexed.contains(&t.key) && BROAD_TAGS.contains(&t.key.as_str()) == broad)
            .map(|t| Lookup::Tag {
                key: index_key(&t.key).to_owned(),
                value: index_key(&t.value).to_owned(),
            })
    };
    let duration = || {
        if query.duration_min_nanos.is_none() && query.duration_max_nanos.is_none() {
            return None;
        }
        let first = hour_bucket(query.start_min_unix_nano);
        let last = hour_bucket(query.start_max_unix_nano);
        let count = u64::try_from(last.saturating_sub(first))
            .ok()?
            .saturating_add(1);
        if count > MAX_DURATION_HOURS {
            return None;
        }
        Some(Lookup::Duration {
            operation: query
                .operation
                .as_deref()
                .map(index_key)
                .unwrap_or("")
                .to_owned(),
            hours: (first..=last).rev().collect(),
            min: clamp_i64(query.duration_min_nanos.unwrap_or(0)),
            max: clamp_i64(query.duration_max_nanos.unwrap_or(u64::MAX)),
        })
    };
    let lookup = tag(false)
        .or_else(duration)
        .or_else(|| {
            query
                .operation
                .as_deref()
                .map(|o| Lookup::ServiceOperation {
                    operation: index_key(o).to_owned(),
                })
        })
        .or_else(|| tag(true))
        .unwrap_or(Lookup::Service);
    Some(Plan {
        lookup,
        start_min: clamp_i64(query.start_min_unix_nano),
        start_max: clamp_i64(query.start_max_unix_nano),
        max_candidates,
    })
}

/// Candidate traces from index rows `(start, trace id)`: each trace keyed by
/// its latest indexed start, newest first, at most `cap`. `true` when more
/// were left out.
pub(crate) fn merge_candidates(
    rows: impl IntoIterator<Item = (i64, TraceId)>,
    cap: usize,
) -> (Vec<(i64, TraceId)>, bool) {
    let mut latest: HashMap<TraceId, i64> = HashMap::new();
    for (start, id) in rows {
        let e = latest.entry(id).or_insert(start);
        *e = (*e).max(start);
    }
    let mut all: Vec<(i64, TraceId)> = latest.into_iter().map(|(id, s)| (s, id)).collect();
    all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let cut = all.len() > cap;
    all.truncate(cap);
    (all, cut)
}

/// The latest start of a span of `spans` matching every filter of `query`.
pub(crate) fn latest_match(query: &TraceQuery, spans: &[Span]) -> Option<u64> {
    spans
        .iter()
        .filter(|s| query.matches_span(s))
        .map(|s| s.start_unix_nano)
        .max()
}

/// Confirmed traces, best first: `(latest matching start, trace id)`.
#[derive(Debug, Default)]
pub(crate) struct Ranking {
    found: Vec<(u64, TraceId)>,
}

impl Ranking {
    pub(crate) fn push(&mut self, latest: u64, id: TraceId) {
        self.found.push((latest, id));
        self.found
            .sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    }

    /// Whether `limit` confirmed traces already rank at or above anything
    /// the remaining candidates can bring: a candidate's matching spans are
    /// indexed, so its best match starts no later than its key.
    pub(crate) fn settled(&self, limit: usize, next_candidate: Option<i64>) -> bool {
        let Some(next) = next_candidate else {
            return true;
        };
        match limit.checked_sub(1).and_then(|i| self.found.get(i)) {
            Some((nth, _)) => clamp_i64(*nth) >= next,
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.found.len()
    }

    /// The best `limit` trace ids.
    pub(crate) fn top(mut self, limit: usize) -> Vec<TraceId> {
        self.found.truncate(limit);
        self.found.into_iter().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use model::{AttrValue, SpanKind, TagFilter};

    use super::*;
    use crate::{
        cassandra::rows::{HOUR_NANOS, MAX_KEY_BYTES},
        testsuite::{MS, SpanBuilder, T0, trace_id},
    };

    fn query() -> TraceQuery {
        TraceQuery {
            limit: 20,
            ..crate::testsuite::any_query()
        }
    }

    fn tag(k: &str, v: &str) -> TagFilter {
        TagFilter {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn plans_pick_the_narrowest_index() {
        let indexed = IndexedTags::new(&["tenant".into()]);
        let p = plan(&query(), &indexed).unwrap();
        assert_eq!(p.lookup, Lookup::Service);
        assert_eq!(p.max_candidates, 400);

        let q = TraceQuery {
            operation: Some("GET".into()),
            tags: vec![tag("span.kind", "server"), tag("unindexed", "1")],
            ..query()
        };
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::ServiceOperation {
                operation: "GET".into()
            },
            "broad tags lose to the operation, unindexed ones are never used"
        );

        let q = TraceQuery {
            tags: vec![tag("span.kind", "server"), tag("tenant", "acme")],
            operation: Some("GET".into()),
            duration_min_nanos: Some(1),
            ..query()
        };
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::Tag {
                key: "tenant".into(),
                value: "acme".into()
            }
        );

        let q = TraceQuery {
            tags: vec![tag("span.kind", "server")],
            ..query()
        };
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::Tag {
                key: "span.kind".into(),
                value: "server".into()
            }
        );

        let q = TraceQuery {
            tags: vec![tag("unindexed", "1")],
            ..query()
        };
        assert_eq!(plan(&q, &indexed).unwrap().lookup, Lookup::Service);
    }

    #[test]
    fn duration_plans_walk_hours_newest_first() {
        let indexed = IndexedTags::new(&[]);
        let q = TraceQuery {
            duration_min_nanos: Some(5 * MS),
            start_min_unix_nano: T0,
            start_max_unix_nano: T0 + 2 * HOUR_NANOS,
            ..query()
        };
        let first = hour_bucket(T0);
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::Duration {
                operation: String::new(),
                hours: vec![first + 2, first + 1, first],
                min: 5 * MS as i64,
                max: i64::MAX,
            }
        );
        // A long window falls back to another index; durations are then
        // confirmed on the spans.
        let q = TraceQuery {
            operation: Some("op".into()),
            start_min_unix_nano: 0,
            start_max_unix_nano: u64::MAX,
            ..q
        };
        let p = plan(&q, &indexed).unwrap();
        assert_eq!(
            p.lookup,
            Lookup::ServiceOperation {
                operation: "op".into()
            }
        );
        assert_eq!((p.start_min, p.start_max), (0, i64::MAX));
    }

    #[test]
    fn impossible_queries_plan_nothing() {
        let indexed = IndexedTags::new(&[]);
        assert!(
            plan(
                &TraceQuery {
                    limit: 0,
                    ..query()
                },
                &indexed
            )
            .is_none()
        );
        assert!(
            plan(
                &TraceQuery {
                    start_min_unix_nano: 2,
                    start_max_unix_nano: 1,
                    ..query()
                },
                &indexed
            )
            .is_none()
        );
        assert!(
            plan(
                &TraceQuery {
                    duration_min_nanos: Some(2),
                    duration_max_nanos: Some(1),
                    ..query()
                },
                &indexed
            )
            .is_none()
        );
        let p = plan(
            &TraceQuery {
                limit: usize::MAX,
                tags: vec![tag("http.route", &"r".repeat(5_000))],
                ..query()
            },
            &indexed,
        )
        .unwrap();
        assert_eq!(p.max_candidates, MAX_CANDIDATES);
        match p.lookup {
            Lookup::Tag { value, .. } => assert_eq!(value.len(), MAX_KEY_BYTES),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn candidates_merge_newest_first_and_stop_at_the_cap() {
        let rows = vec![
            (10, trace_id(1)),
            (30, trace_id(2)),
            (20, trace_id(1)),
            (5, trace_id(3)),
            (30, trace_id(4)),
        ];
        let (c, cut) = merge_candidates(rows.clone(), 10);
        assert_eq!(
            c,
            [
                (30, trace_id(2)),
                (30, trace_id(4)),
                (20, trace_id(1)),
                (5, trace_id(3))
            ]
        );
        assert!(!cut);
        let (c, cut) = merge_candidates(rows, 2);
        assert_eq!(c.len(), 2);
        assert!(cut);
    }

    #[test]
    fn ranking_settles_only_when_no_candidate_can_beat_it() {
        let mut r = Ranking::default();
        assert!(!r.settled(1, Some(0)));
        assert!(r.settled(1, None));
        r.push(100, trace_id(1));
        assert!(r.settled(1, Some(100)));
        assert!(!r.settled(1, Some(101)));
        assert!(!r.settled(2, Some(0)));
        r.push(200, trace_id(2));
        assert!(r.settled(2, Some(50)));
        assert!(!r.settled(0, Some(1)), "limit 0 never plans");
        assert_eq!(r.len(), 2);
        assert_eq!(r.top(1), [trace_id(2)]);
    }

    #[test]
    fn latest_match_is_exact_jaeger_semantics() {
        let spans = vec![
            SpanBuilder::new(1, 1, "api")
                .at(0, 1)
                .attr("a", AttrValue::Str("1".into()))
                .build(),
            SpanBuilder::new(1, 2, "api")
                .at(5, 1)
                .attr("b", AttrValue::Str("2".into()))
                .kind(SpanKind::Client)
                .build(),
            SpanBuilder::new(1, 3, "api")
                .at(9, 1)
                .attr("a", AttrValue::Str("1".into()))
                .build(),
        ];
        let q = TraceQuery {
            tags: vec![tag("a", "1"), tag("b", "2")],
            ..query()
        };
        assert_eq!(latest_match(&q, &spans), None, "tags on different spans");
        let q = TraceQuery {
            tags: vec![tag("a", "1")],
            ..query()
        };
        assert_eq!(latest_match(&q, &spans), Some(T0 + 9 * MS));
        let q = TraceQuery {
            span_kind: Some(SpanKind::Client),
            ..query()
        };
        assert_eq!(latest_match(&q, &spans), Some(T0 + 5 * MS));
    }
}
