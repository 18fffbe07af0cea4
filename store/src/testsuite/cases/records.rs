//! Derived-record cases: put, scan and expire, and RED records' own
//! retention.

use std::sync::Arc;

use model::RetentionPolicy;
use telemetry::clock::{unix_ms, unix_nanos};

use crate::{Record, RecordKind, RecordScan, SpanStore, testsuite::trace_id};

pub(super) async fn records_put_scan_and_expire(store: Arc<dyn SpanStore>) {
    let now_ms = unix_ms();
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
        .enforce_retention(&policy, unix_nanos())
        .await
        .expect("retention");
    let kept = store
        .scan_records(&scan("aa|", None, 10))
        .await
        .expect("scan");
    assert_eq!(values(kept), ["one, again", "two"]);
}

/// RED records outlive span retention and are deleted per kind.
pub(super) async fn red_records_keep_their_own_retention(store: Arc<dyn SpanStore>) {
    let now_ms = unix_ms();
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
        .enforce_retention(&policy, unix_nanos())
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
