//! The cases. Each gets a fresh, empty store.

use std::sync::Arc;

use model::{AttrValue, KeyValue, RetentionPolicy, SpanKind, TagFilter, TraceQuery};

use super::{Case, MS, SpanBuilder as B, T0, trace_id};
use crate::{Operation, SpanStore};

macro_rules! cases {
    ($($name:ident),+ $(,)?) => {
        pub(super) fn all() -> Vec<Case> {
            vec![$((stringify!($name), |s| Box::pin($name(s)))),+]
        }
    };
}

cases!(
    roundtrip_preserves_every_field,
    rewrite_is_idempotent,
    missing_trace_is_none,
    services_and_operations,
    find_by_service_and_operation,
    find_by_tags,
    tags_must_match_within_one_span,
    time_window_and_durations,
    limit_and_most_recent_first,
    many_traces_in_one_batch,
    large_batch,
    retention_by_cluster,
    storage_usage_per_cluster,
    records_put_scan_and_expire,
    red_records_keep_their_own_retention,
);

/// Cases that need [`SpanStore::enforce_retention`] to act on the `now` it
/// is given; a backend that expires data by write-time TTL skips them.
pub(super) const RETENTION_CASES: &[&str] = &["retention_by_cluster"];

/// Cases on derived records ([`crate::Record`]), which not every backend
/// keeps.
pub(super) const RECORD_CASES: &[&str] = &[
    "records_put_scan_and_expire",
    "red_records_keep_their_own_retention",
];

fn query() -> TraceQuery {
    super::any_query()
}

fn tag(k: &str, v: &str) -> TagFilter {
    TagFilter {
        key: k.to_owned(),
        value: v.to_owned(),
    }
}

async fn found(store: &Arc<dyn SpanStore>, q: &TraceQuery) -> Vec<u64> {
    store
        .find_traces(q)
        .await
        .expect("find_traces")
        .iter()
        .map(|t| {
            let mut low = [0u8; 8];
            low.copy_from_slice(&t.trace_id.as_bytes()[8..]);
            u64::from_be_bytes(low)
        })
        .collect()
}

async fn roundtrip_preserves_every_field(store: Arc<dyn SpanStore>) {
    let mut full = B::new(1, 1, "checkout")
        .name("PlaceOrder")
        .kind(SpanKind::Client)
        .parent(9)
        .at(5, 20)
        .error("payment declined")
        .attr("s", AttrValue::Str("text".into()))
        .attr("b", AttrValue::Bool(true))
        .attr("i", AttrValue::Int(-42))
        .attr("d", AttrValue::Double(2.5))
        .attr("y", AttrValue::Bytes(vec![0, 1, 255]))
        .attr("big", AttrValue::Int(i64::MAX))
        .event("retry", vec![KeyValue::new("attempt", AttrValue::Int(2))])
        .link(2, 7)
        .cluster("eu-west")
        .build();
    full.flags = 0x301;
    full.trace_state = "ot=th:8".into();
    full.scope_name = "io.opentelemetry.http".into();
    full.scope_version = "1.2.3".into();
    let other = B::new(1, 2, "frontend").build();
    let out = store
        .write(&[full.clone(), other.clone()])
        .await
        .expect("write");
    assert_eq!((out.inserted, out.duplicates), (2, 0));
    let trace = store
        .get_trace(full.trace_id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(trace.trace_id, full.trace_id);
    assert_eq!(trace.spans.len(), 2);
    let got = trace
        .spans
        .iter()
        .find(|s| s.span_id == full.span_id)
        .expect("span");
    assert_eq!(got, &full);
    assert_eq!(got.resource.service_name, "checkout");
    assert_eq!(got.cluster.as_str(), "eu-west");
}

async fn rewrite_is_idempotent(store: Arc<dyn SpanStore>) {
    let batch: Vec<_> = (1..=5).map(|i| B::new(3, i, "svc").build()).collect();
    let first = store.write(&batch).await.expect("write");
    assert_eq!((first.inserted, first.duplicates), (5, 0));
    let again = store.write(&batch).await.expect("rewrite");
    assert_eq!((again.inserted, again.duplicates), (0, 5));
    let mut mixed = batch[..2].to_vec();
    mixed.push(B::new(3, 6, "svc").build());
    let third = store.write(&mixed).await.expect("mixed");
    assert_eq!((third.inserted, third.duplicates), (1, 2));
    let trace = store
        .get_trace(trace_id(3))
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(trace.spans.len(), 6);
    assert_eq!(
        found(
            &store,
            &TraceQuery {
                service: Some("svc".into()),
                ..query()
            }
        )
        .await,
        [3]
    );
    assert_eq!(store.write(&[]).await.expect("empty").inserted, 0);
}

async fn missing_trace_is_none(store: Arc<dyn SpanStore>) {
    assert!(store.get_trace(trace_id(404)).await.expect("get").is_none());
    store
        .write(&[B::new(1, 1, "a").build()])
        .await
        .expect("write");
    assert!(store.get_trace(trace_id(404)).await.expect("get").is_none());
    store.ping().await.expect("ping");
}

async fn services_and_operations(store: Arc<dyn SpanStore>) {
    assert!(store.services().await.expect("services").is_empty());
    store
        .write(&[
            B::new(1, 1, "b-svc")
                .name("GET /x")
                .kind(SpanKind::Server)
                .build(),
            B::new(1, 2, "b-svc")
                .name("query")
                .kind(SpanKind::Client)
                .build(),
            B::new(1, 3, "b-svc")
                .name("GET /x")
                .kind(SpanKind::Server)
                .build(),
            B::new(2, 1, "a-svc")
                .name("consume")
                .kind(SpanKind::Consumer)
                .build(),
        ])
        .await
        .expect("write");
    assert_eq!(
        store.services().await.expect("services"),
        ["a-svc", "b-svc"]
    );
    let ops = store.operations("b-svc", None).await.expect("ops");
    assert_eq!(
        ops,
        [
            Operation {
                name: "GET /x".into(),
                span_kind: SpanKind::Server
            },
            Operation {
                name: "query".into(),
                span_kind: SpanKind::Client
            },
        ]
    );
    let client = store
        .operations("b-svc", Some(SpanKind::Client))
        .await
        .expect("ops");
    assert_eq!(client.len(), 1);
    assert_eq!(client[0].name, "query");
    assert!(
        store
            .operations("nope", None)
            .await
            .expect("ops")
            .is_empty()
    );
}

async fn find_by_service_and_operation(store: Arc<dyn SpanStore>) {
    store
        .write(&[
            B::new(1, 1, "front").name("GET /").build(),
            B::new(1, 2, "back").name("load").parent(1).build(),
            B::new(2, 1, "front").name("POST /").build(),
        ])
        .await
        .expect("write");
    let mut by_service = found(
        &store,
        &TraceQuery {
            service: Some("front".into()),
            ..query()
        },
    )
    .await;
    by_service.sort();
    assert_eq!(by_service, [1, 2]);
    let back = store
        .find_traces(&TraceQuery {
            service: Some("back".into()),
            ..query()
        })
        .await
        .expect("find");
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0].spans.len(),
        2,
        "a found trace carries all its spans"
    );
    assert_eq!(
        found(
            &store,
            &TraceQuery {
                service: Some("front".into()),
                operation: Some("POST /".into()),
                ..query()
            }
        )
        .await,
        [2]
    );
    assert_eq!(
        found(
            &store,
            &TraceQuery {
                service: Some("back".into()),
                operation: Some("GET /".into()),
                ..query()
            }
        )
        .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        found(
            &store,
            &TraceQuery {
                span_kind: Some(SpanKind::Client),
                ..query()
            }
        )
        .await,
        Vec::<u64>::new()
    );
}

async fn find_by_tags(store: Arc<dyn SpanStore>) {
    store
        .write(&[
            B::new(1, 1, "api")
                .attr("http.status_code", AttrValue::Int(500))
                .error("boom")
                .build(),
            B::new(2, 1, "api")
                .attr("http.status_code", AttrValue::Int(200))
                .cluster("west")
                .build(),
            B::new(3, 1, "api")
                .event("cache", vec![KeyValue::new("hit", AttrValue::Bool(false))])
                .attr("ratio", AttrValue::Double(0.25))
                .build(),
        ])
        .await
        .expect("write");
    let q = |tags: Vec<TagFilter>| TraceQuery { tags, ..query() };
    assert_eq!(
        found(&store, &q(vec![tag("http.status_code", "500")])).await,
        [1]
    );
    assert_eq!(found(&store, &q(vec![tag("error", "true")])).await, [1]);
    assert_eq!(
        found(&store, &q(vec![tag("otel.status_code", "ERROR")])).await,
        [1]
    );
    assert_eq!(
        found(&store, &q(vec![tag("k8s.cluster.name", "west")])).await,
        [2]
    );
    assert_eq!(found(&store, &q(vec![tag("hit", "false")])).await, [3]);
    assert_eq!(found(&store, &q(vec![tag("ratio", "0.25")])).await, [3]);
    let mut server = found(&store, &q(vec![tag("span.kind", "server")])).await;
    server.sort();
    assert_eq!(server, [1, 2, 3]);
    assert!(
        found(&store, &q(vec![tag("http.status_code", "404")]))
            .await
            .is_empty()
    );
}

async fn tags_must_match_within_one_span(store: Arc<dyn SpanStore>) {
    store
        .write(&[
            // Trace 1: the two tags sit on different spans.
            B::new(1, 1, "api")
                .attr("a", AttrValue::Str("1".into()))
                .build(),
            B::new(1, 2, "api")
                .attr("b", AttrValue::Str("2".into()))
                .build(),
            // Trace 2: both on one span.
            B::new(2, 1, "api")
                .attr("a", AttrValue::Str("1".into()))
                .attr("b", AttrValue::Str("2".into()))
                .build(),
        ])
        .await
        .expect("write");
    let q = TraceQuery {
        tags: vec![tag("a", "1"), tag("b", "2")],
        ..query()
    };
    assert_eq!(found(&store, &q).await, [2]);
    let q = TraceQuery {
        service: Some("api".into()),
        tags: vec![tag("a", "1")],
        ..query()
    };
    let mut both = found(&store, &q).await;
    both.sort();
    assert_eq!(both, [1, 2]);
}

async fn time_window_and_durations(store: Arc<dyn SpanStore>) {
    store
        .write(&[
            B::new(1, 1, "api").at(0, 5).build(),
            B::new(2, 1, "api").at(60_000, 500).build(),
            B::new(3, 1, "api").at(120_000, 2_000).build(),
        ])
        .await
        .expect("write");
    let window = |lo: u64, hi: u64| TraceQuery {
        start_min_unix_nano: T0 + lo * MS,
        start_max_unix_nano: T0 + hi * MS,
        ..query()
    };
    assert_eq!(found(&store, &window(30_000, 90_000)).await, [2]);
    assert_eq!(
        found(&store, &window(0, 0)).await,
        [1],
        "bounds are inclusive"
    );
    assert_eq!(
        found(&store, &window(200_000, 300_000)).await,
        Vec::<u64>::new()
    );
    let dur = |min: Option<u64>, max: Option<u64>| TraceQuery {
        duration_min_nanos: min.map(|m| m * MS),
        duration_max_nanos: max.map(|m| m * MS),
        ..query()
    };
    assert_eq!(found(&store, &dur(Some(1_000), None)).await, [3]);
    assert_eq!(found(&store, &dur(None, Some(5))).await, [1]);
    assert_eq!(found(&store, &dur(Some(500), Some(500))).await, [2]);
}

async fn limit_and_most_recent_first(store: Arc<dyn SpanStore>) {
    let spans: Vec<_> = (1..=30u64)
        .map(|t| B::new(t, 1, "api").at(t * 1_000, 1).build())
        .collect();
    store.write(&spans).await.expect("write");
    let got = found(
        &store,
        &TraceQuery {
            limit: 5,
            ..query()
        },
    )
    .await;
    assert_eq!(got, [30, 29, 28, 27, 26]);
    let all = found(
        &store,
        &TraceQuery {
            limit: 1_000,
            ..query()
        },
    )
    .await;
    assert_eq!(all.len(), 30);
}

async fn many_traces_in_one_batch(store: Arc<dyn SpanStore>) {
    let mut spans = Vec::new();
    for t in 1..=50u64 {
        for s in 1..=4u64 {
            spans.push(
                B::new(t, s, "svc")
                    .parent(s.saturating_sub(1).max(1))
                    .build(),
            );
        }
    }
    let out = store.write(&spans).await.expect("write");
    assert_eq!(out.inserted, 200);
    for t in [1u64, 25, 50] {
        let trace = store
            .get_trace(trace_id(t))
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(trace.spans.len(), 4);
        assert!(trace.spans.iter().all(|s| s.trace_id == trace_id(t)));
    }
}

async fn large_batch(store: Arc<dyn SpanStore>) {
    let spans: Vec<_> = (0..5_000u64)
        .map(|i| {
            B::new(i / 10 + 1, i % 10 + 1, &format!("svc-{}", i % 7))
                .attr("k", AttrValue::Str(format!("v{}", i % 13)))
                .at(i, 1)
                .build()
        })
        .collect();
    let out = store.write(&spans).await.expect("write");
    assert_eq!(out.inserted, 5_000);
    assert_eq!(store.services().await.expect("services").len(), 7);
    let trace = store
        .get_trace(trace_id(500))
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(trace.spans.len(), 10);
    let q = TraceQuery {
        tags: vec![tag("k", "v3")],
        limit: 2_000,
        ..query()
    };
    assert!(!found(&store, &q).await.is_empty());
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

const HOUR: u64 = 3_600_000 * MS;

async fn retention_by_cluster(store: Arc<dyn SpanStore>) {
    let now = now_nanos();
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

async fn storage_usage_per_cluster(store: Arc<dyn SpanStore>) {
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

async fn records_put_scan_and_expire(store: Arc<dyn SpanStore>) {
    use crate::{Record, RecordKind, RecordScan};
    let now_ms = i64::try_from(now_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let t = trace_id(7);
    let rec = |kind, key: &str, time_ms, value: &str| Record {
        kind,
        key: key.to_owned(),
        time_ms,
        value: value.as_bytes().to_vec(),
        trace: Some(t),
    };
    store
        .put_records(&[
            rec(RecordKind::Backlink, "aa|1", now_ms, "one"),
            rec(RecordKind::Backlink, "aa|2", now_ms - 1_000, "two"),
            rec(RecordKind::Backlink, "ab|1", now_ms, "other prefix"),
            rec(RecordKind::Summary, "aa|1", now_ms, "another kind"),
            // 10 days old: past the retention below.
            rec(
                RecordKind::Backlink,
                "aa|0",
                now_ms - 240 * 3_600_000,
                "old",
            ),
        ])
        .await
        .expect("put_records");
    // Replacing keeps one record per key.
    store
        .put_records(&[rec(RecordKind::Backlink, "aa|1", now_ms, "one, again")])
        .await
        .expect("put_records");
    let scan = |prefix: &str, time, limit| RecordScan {
        kind: RecordKind::Backlink,
        prefix: prefix.to_owned(),
        time,
        limit,
        trace: Some(t),
    };
    let values = |rs: Vec<Record>| -> Vec<String> {
        rs.into_iter()
            .map(|r| String::from_utf8(r.value).expect("utf8"))
            .collect()
    };
    let all = store
        .scan_records(&scan("aa|", None, 10))
        .await
        .expect("scan");
    assert_eq!(values(all), ["old", "one, again", "two"]);
    let recent = store
        .scan_records(&scan("aa|", Some((now_ms - 500, now_ms)), 10))
        .await
        .expect("scan");
    assert_eq!(values(recent), ["one, again"]);
    let limited = store.scan_records(&scan("a", None, 2)).await.expect("scan");
    assert_eq!(limited.len(), 2);
    let policy = RetentionPolicy {
        default_hours: Some(168),
        ..Default::default()
    };
    store
        .enforce_retention(&policy, now_nanos())
        .await
        .expect("retention");
    let kept = store
        .scan_records(&scan("aa|", None, 10))
        .await
        .expect("scan");
    assert_eq!(values(kept), ["one, again", "two"]);
}

/// RED records outlive span retention and are deleted per kind.
async fn red_records_keep_their_own_retention(store: Arc<dyn SpanStore>) {
    use crate::{Record, RecordKind, RecordScan};
    let now_ms = i64::try_from(now_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let day = 24 * 3_600_000;
    let rec = |kind, key: &str, time_ms| Record {
        kind,
        key: key.to_owned(),
        time_ms,
        value: b"v".to_vec(),
        trace: None,
    };
    store
        .put_records(&[
            rec(RecordKind::Red10s, "c|s|old", now_ms - 2 * day),
            rec(RecordKind::Red10s, "c|s|new", now_ms),
            rec(RecordKind::Red1h, "c|s|old", now_ms - 30 * day),
        ])
        .await
        .expect("put_records");
    let policy = RetentionPolicy {
        default_hours: Some(24),
        ..Default::default()
    };
    store
        .enforce_retention(&policy, now_nanos())
        .await
        .expect("retention");
    let keys = |kind| {
        let store = Arc::clone(&store);
        async move {
            store
                .scan_records(&RecordScan {
                    kind,
                    prefix: "c|".into(),
                    time: None,
                    limit: 10,
                    trace: None,
                })
                .await
                .expect("scan")
                .into_iter()
                .map(|r| r.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(keys(RecordKind::Red10s).await, ["c|s|new", "c|s|old"]);
    assert_eq!(keys(RecordKind::Red1h).await, ["c|s|old"]);
    let n = store
        .delete_records(RecordKind::Red10s, now_ms - day)
        .await
        .expect("delete");
    assert_eq!(n, 1);
    assert_eq!(keys(RecordKind::Red10s).await, ["c|s|new"]);
    assert_eq!(keys(RecordKind::Red1h).await, ["c|s|old"]);
}
