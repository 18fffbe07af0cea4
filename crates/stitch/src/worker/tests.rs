//! The worker on its own, against the real embedded store (SQLite in a
//! temporary directory) and a manual clock: what one flush writes.

use std::{sync::Arc, time::Duration};

use model::{SpanId, SpanKind, TraceId};
use store::{RecordKind, RecordScan, SpanStore, StoreOptions};
use telemetry::clock::ManualClock;

use super::Worker;
use crate::{
    StitchConfig, StitchMetrics,
    records::stored_summary,
    route::{Batch, DroppedReport},
    trace_state::{EdgeAgg, Note},
};

const T0_MS: i64 = 1_800_000_000_000;

fn tid(n: u8) -> TraceId {
    TraceId::from_bytes(&[n; 16]).expect("non-zero id")
}

fn sid(n: u8) -> SpanId {
    SpanId::from_bytes(&[n; 8]).expect("non-zero id")
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn SpanStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = store::open(&[url], &StoreOptions::default())
        .await
        .expect("open sqlite");
    (dir, store)
}

fn worker(store: Arc<dyn SpanStore>, clock: &ManualClock) -> Worker {
    let config = StitchConfig {
        clock: clock.shared(),
        ..StitchConfig::default()
    };
    Worker::new(1, store, Arc::new(config), StitchMetrics::default())
}

/// A client span in `cluster` and, when `parent` is given, its child.
fn note(
    trace: u8,
    span: u8,
    parent: Option<u8>,
    service: &str,
    cluster: &str,
    kind: SpanKind,
) -> Note {
    let start = u64::try_from(T0_MS).expect("positive") * 1_000_000 + u64::from(span) * 1_000;
    Note {
        trace: tid(trace),
        span: sid(span),
        parent: parent.map(sid),
        service: service.into(),
        cluster: cluster.into(),
        name: format!("op-{span}"),
        kind: kind as i32,
        start,
        end: start + 5_000_000,
        error: span == 3,
        policy: None,
    }
}

async fn edges(store: &dyn SpanStore) -> Vec<(String, EdgeAgg)> {
    store
        .scan_records(&RecordScan {
            kind: RecordKind::Edge,
            prefix: String::new(),
            time: None,
            limit: 100,
            trace: None,
        })
        .await
        .expect("scan edges")
        .into_iter()
        .map(|r| (r.key, serde_json::from_slice(&r.value).expect("edge json")))
        .collect()
}

#[tokio::test]
async fn a_flush_writes_the_summary_and_one_cross_cluster_edge_per_pair() {
    let (_dir, store) = sqlite().await;
    let clock = ManualClock::at_unix_ms(T0_MS);
    let mut w = worker(Arc::clone(&store), &clock);
    // Child first, then its parent: the pair forms whichever comes first.
    let child = note(7, 2, Some(1), "api", "eu", SpanKind::Server);
    let parent = note(7, 1, None, "web", "us", SpanKind::Client);
    let batch: Batch = vec![(0, child)];
    w.process(batch).await;
    w.process(vec![(0, parent)]).await;
    // Nothing is written before the flush.
    assert!(
        stored_summary(store.as_ref(), tid(7))
            .await
            .expect("read")
            .is_none()
    );
    w.flush().await;

    let summary = stored_summary(store.as_ref(), tid(7))
        .await
        .expect("read")
        .expect("a summary");
    assert_eq!(summary.spans, 2);
    assert_eq!(summary.clusters.get("us"), Some(&1));
    assert_eq!(summary.clusters.get("eu"), Some(&1));
    assert_eq!(
        summary.last_arrival_ms,
        u64::try_from(T0_MS).expect("positive")
    );
    assert!(summary.root.is_some(), "the parent is the root");
    let found = edges(store.as_ref()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1.calls, 1);
    assert!(
        found[0].0.contains("web@us") && found[0].0.contains("api@eu"),
        "{}",
        found[0].0
    );

    // A second flush with nothing new changes nothing; a replayed note is
    // not a second call.
    w.process(vec![(
        0,
        note(7, 2, Some(1), "api", "eu", SpanKind::Server),
    )])
    .await;
    w.flush().await;
    let again = edges(store.as_ref()).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.calls, 1, "a replayed span is not a new call");
}

#[tokio::test]
async fn edge_totals_add_up_across_flushes_and_errors_count() {
    let (_dir, store) = sqlite().await;
    let clock = ManualClock::at_unix_ms(T0_MS);
    let mut w = worker(Arc::clone(&store), &clock);
    for trace in 1..=3u8 {
        w.process(vec![(
            0,
            note(trace, 1, None, "web", "us", SpanKind::Client),
        )])
        .await;
        // Span 3 is an error (see `note`).
        let child = if trace == 3 { 3 } else { 2 };
        w.process(vec![(
            0,
            note(trace, child, Some(1), "api", "eu", SpanKind::Server),
        )])
        .await;
        w.flush().await;
        clock.advance(Duration::from_millis(10));
    }
    let found = edges(store.as_ref()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].1.calls, found[0].1.errors), (3, 1));
}

#[tokio::test]
async fn a_drop_report_lands_in_the_trace_summary() {
    let (_dir, store) = sqlite().await;
    let clock = ManualClock::at_unix_ms(T0_MS);
    let mut w = worker(Arc::clone(&store), &clock);
    w.process(vec![(0, note(9, 1, None, "web", "us", SpanKind::Server))])
        .await;
    w.dropped(DroppedReport {
        trace: tid(9),
        shard: 0,
        cluster: "eu".into(),
        reason: "verdict_timeout".into(),
        spans: 4,
    })
    .await;
    w.flush().await;
    let summary = stored_summary(store.as_ref(), tid(9))
        .await
        .expect("read")
        .expect("a summary");
    assert_eq!(summary.dropped.len(), 1, "{:?}", summary.dropped);
    assert_eq!(summary.dropped[0].cluster, "eu");
    assert_eq!(summary.spans, 1);
}
