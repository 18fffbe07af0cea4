//! Retention and usage cases: per-cluster retention at a given `now`, and
//! storage usage per cluster.

use std::sync::Arc;

use model::{RetentionPolicy, TraceQuery};
use telemetry::clock::unix_nanos;

use super::{B, found, query};
use crate::{
    SpanStore,
    testsuite::{MS, trace_id},
};

const HOUR: u64 = 3_600_000 * MS;

pub(super) async fn retention_by_cluster(store: Arc<dyn SpanStore>) {
    let now = unix_nanos();
    store
        .write(&[
            // 3 days old: past "short" (48 h), within the default (168 h).
            B::new(1, 1, "api")
                .cluster("short")
                .at_unix(now - 72 * HOUR, 1)
                .build(),
            B::new(2, 1, "api")
                .cluster("long")
                .at_unix(now - 72 * HOUR, 1)
                .build(),
            // Fresh.
            B::new(3, 1, "api")
                .cluster("short")
                .at_unix(now - HOUR, 1)
                .build(),
            // 10 days old: past every TTL (a whole expired day).
            B::new(4, 1, "api")
                .cluster("long")
                .at_unix(now - 240 * HOUR, 1)
                .build(),
            B::new(4, 2, "api")
                .cluster("short")
                .at_unix(now - 240 * HOUR, 1)
                .build(),
        ])
        .await
        .expect("write");
    let policy = RetentionPolicy {
        default_hours: Some(168),
        clusters: [("short".to_owned(), 48)].into(),
    };
    let first = store
        .enforce_retention(&policy, now)
        .await
        .expect("retention");
    assert!(
        first.spans_deleted + first.partitions_dropped > 0,
        "something expired: {first:?}"
    );
    for (t, kept) in [(1, false), (2, true), (3, true), (4, false)] {
        let got = store.get_trace(trace_id(t)).await.expect("get");
        assert_eq!(got.is_some(), kept, "trace {t}");
    }
    let q = TraceQuery {
        start_min_unix_nano: now - 300 * HOUR,
        start_max_unix_nano: now,
        ..query()
    };
    let mut left = found(&store, &q).await;
    left.sort();
    assert_eq!(left, [2, 3]);
    let again = store
        .enforce_retention(&policy, now)
        .await
        .expect("retention");
    assert_eq!(again, Default::default(), "a second pass removes nothing");
    // A policy that keeps everything removes nothing.
    let none = store
        .enforce_retention(&RetentionPolicy::default(), now)
        .await
        .expect("retention");
    assert_eq!(none, Default::default());
    let usage = store.storage_usage().await.expect("usage");
    let spans_of = |c: &str| -> u64 {
        usage
            .iter()
            .flat_map(|s| &s.clusters)
            .filter(|u| u.cluster == c)
            .map(|u| u.spans)
            .sum()
    };
    assert_eq!((spans_of("short"), spans_of("long")), (1, 1));
}

pub(super) async fn storage_usage_per_cluster(store: Arc<dyn SpanStore>) {
    let mut spans = Vec::new();
    for t in 1..=20u64 {
        spans.push(B::new(t, 1, "api").cluster("east").build());
        if t % 2 == 0 {
            spans.push(B::new(t, 2, "db").cluster("west").build());
        }
    }
    store.write(&spans).await.expect("write");
    let usage = store.storage_usage().await.expect("usage");
    assert!(!usage.is_empty());
    assert!(usage.iter().all(|s| s.error.is_none()));
    assert!(usage.iter().map(|s| s.total_bytes).sum::<u64>() > 0);
    let of = |c: &str| -> (u64, u64) {
        usage
            .iter()
            .flat_map(|s| &s.clusters)
            .filter(|u| u.cluster == c)
            .fold((0, 0), |a, u| (a.0 + u.spans, a.1 + u.body_bytes))
    };
    let (east, east_bytes) = of("east");
    let (west, west_bytes) = of("west");
    assert_eq!((east, west), (20, 10));
    assert!(east_bytes > west_bytes && west_bytes > 0);
    assert_eq!(usage.iter().map(|s| s.spans).sum::<u64>(), 30);
}
