//! Explain reads both sides on the reference cluster's clock: traces
//! us-east → ap-south where ap-south's clock runs 400 ms ahead, stored in
//! a real SQLite store with the stitcher's offset record. With the offset
//! the gap us-east → ap-south is the network's 10 ms and ap-south's
//! service keeps its own time; without it, the server span sits outside
//! its client span and its time cannot be attributed to it.

use std::time::{SystemTime, UNIX_EPOCH};

use model::{SpanKind, access::Scope};
use query::explain::{params, run};
use store::{Record, RecordKind, SpanStore, sqlite::SqliteStore, testsuite::SpanBuilder};

const MS: u64 = 1_000_000;
const SKEW_MS: u64 = 400;

fn now_ns() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after the epoch");
    u64::try_from(d.as_nanos()).expect("fits")
}

/// Trace `n` at `t0`: web (us-east, 0..`total`) → client (us-east,
/// 10..`total`-10) → reco (ap-south, 5 ms after the client starts, 5 ms
/// before it ends), reco's times on a clock `SKEW_MS` ahead.
fn spans(n: u64, t0: u64, total: u64) -> Vec<model::Span> {
    let root = SpanBuilder::new(n, 1, "web")
        .cluster("us-east")
        .at_unix(t0, total)
        .build();
    let client = SpanBuilder::new(n, 2, "web")
        .cluster("us-east")
        .name("GET /reco")
        .kind(SpanKind::Client)
        .parent(1)
        .at_unix(t0 + 10 * MS, total - 20)
        .build();
    let server = SpanBuilder::new(n, 3, "reco")
        .cluster("ap-south")
        .name("GET /reco")
        .parent(2)
        .at_unix(t0 + (15 + SKEW_MS) * MS, total - 30)
        .build();
    vec![root, client, server]
}

fn offset_record() -> Record {
    let value = serde_json::json!({
        "cluster": "ap-south", "reference": "us-east", "offsetNs": SKEW_MS * MS,
        "samples": 500, "node": 1, "updatedMs": now_ns() / MS,
    });
    Record {
        kind: RecordKind::Offset,
        key: "ap-south|1".into(),
        time_ms: (now_ns() / MS) as i64,
        value: serde_json::to_vec(&value).expect("json"),
        trace: None,
    }
}

async fn explained(with_offset: bool) -> run::Answer {
    let store = SqliteStore::open("sqlite::memory:").await.expect("sqlite");
    let t0 = now_ns() - 600_000 * MS;
    let mut all = Vec::new();
    for n in 0..40u64 {
        // The first half slow (100 ms more inside reco), the rest fast.
        let total = if n < 20 { 200 } else { 100 };
        all.extend(spans(n + 1, t0 + n * 1_000 * MS, total));
    }
    store.write(&all).await.expect("write");
    if with_offset {
        store.put_records(&[offset_record()]).await.expect("offset");
    }
    let qs = format!(
        "service=web&minDuration=150ms&start={}&end={}",
        (t0 - MS) / 1_000,
        (t0 + 60_000 * MS) / 1_000
    );
    let req = params::request(Some(&qs), now_ns(), &query::QueryLimits::default()).expect("params");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    run::run(&store, &req, &Scope::All, deadline)
        .await
        .expect("explain")
}

fn gap(a: &run::Answer) -> (f64, f64) {
    a.explanation
        .gaps
        .iter()
        .find(|g| g.from_cluster == "us-east" && g.to_cluster == "ap-south")
        .map_or((0.0, 0.0), |g| (g.selection_ms, g.baseline_ms))
}

fn reco(a: &run::Answer) -> (f64, f64) {
    a.explanation
        .latency
        .iter()
        .find(|l| l.service == "reco")
        .map_or((0.0, 0.0), |l| (l.selection_self_ms, l.baseline_self_ms))
}

#[tokio::test]
async fn with_the_offset_the_gap_is_the_network_and_the_extra_time_is_reco_s() {
    let a = explained(true).await;
    assert_eq!(a.explanation.selection.traces, 20);
    assert_eq!(a.explanation.baseline.traces, 20);
    assert!(
        a.warnings.iter().any(|w| w.starts_with("clock skew:")),
        "{:?}",
        a.warnings
    );
    let (sel, base) = gap(&a);
    assert!(
        (sel - 10.0).abs() < 0.01 && (base - 10.0).abs() < 0.01,
        "{sel} {base}"
    );
    let (sel, base) = reco(&a);
    assert!(
        (sel - 170.0).abs() < 0.01 && (base - 70.0).abs() < 0.01,
        "{sel} {base}"
    );
    assert_eq!(a.explanation.latency[0].service, "reco");
}

#[tokio::test]
async fn without_it_the_server_falls_outside_its_client() {
    let a = explained(false).await;
    // reco's span starts 400 ms late, after its client ended: clipped out.
    assert_eq!(reco(&a), (0.0, 0.0));
    assert_eq!(a.explanation.latency[0].service, "web");
}
