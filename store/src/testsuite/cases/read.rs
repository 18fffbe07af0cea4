//! Read cases: trace by id, and the service and operation lists.

use std::sync::Arc;

use model::{SpanKind, access::Scope};

use super::B;
use crate::{Operation, SpanStore, testsuite::trace_id};

pub(super) async fn missing_trace_is_none(store: Arc<dyn SpanStore>) {
    assert!(store.get_trace(trace_id(404)).await.expect("get").is_none());
    store
        .write(&[B::new(1, 1, "a").build()])
        .await
        .expect("write");
    assert!(store.get_trace(trace_id(404)).await.expect("get").is_none());
    store.ping().await.expect("ping");
}

pub(super) async fn services_and_operations(store: Arc<dyn SpanStore>) {
    assert!(
        store
            .services(&Scope::All)
            .await
            .expect("services")
            .is_empty()
    );
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
        store.services(&Scope::All).await.expect("services"),
        ["a-svc", "b-svc"]
    );
    let ops = store
        .operations("b-svc", None, &Scope::All)
        .await
        .expect("ops");
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
        .operations("b-svc", Some(SpanKind::Client), &Scope::All)
        .await
        .expect("ops");
    assert_eq!(client.len(), 1);
    assert_eq!(client[0].name, "query");
    assert!(
        store
            .operations("nope", None, &Scope::All)
            .await
            .expect("ops")
            .is_empty()
    );
}

/// A whole-trace load under a cap returns `cap` of the trace's spans in
/// start order and says the trace was truncated; at or under the cap it is
/// the whole trace. (Which spans are kept is the backend's: SQLite keeps
/// the earliest, Postgres and Cassandra the first they read.)
pub(super) async fn capped_trace_keeps_the_earliest_spans(store: Arc<dyn SpanStore>) {
    // Written in reverse start order, in two batches (two chunks on
    // backends that group spans).
    let spans: Vec<_> = (1..=10u64)
        .rev()
        .map(|i| B::new(9, i, "big").at(i * 10, 1).build())
        .collect();
    store.write(&spans[..5]).await.expect("write");
    store.write(&spans[5..]).await.expect("write");
    let capped = store
        .get_trace_capped(trace_id(9), 4)
        .await
        .expect("get")
        .expect("stored");
    assert!(capped.truncated);
    assert_eq!(capped.trace.spans.len(), 4);
    assert!(
        capped
            .trace
            .spans
            .windows(2)
            .all(|w| w[0].start_unix_nano < w[1].start_unix_nano),
        "distinct spans in start order"
    );
    assert!(capped.trace.spans.iter().all(|s| spans.contains(s)));
    for cap in [10, 11, 50_000] {
        let whole = store
            .get_trace_capped(trace_id(9), cap)
            .await
            .expect("get")
            .expect("stored");
        assert!(!whole.truncated, "cap {cap}");
        assert_eq!(whole.trace.spans.len(), 10, "cap {cap}");
    }
    assert!(
        store
            .get_trace_capped(trace_id(404), 4)
            .await
            .expect("get")
            .is_none()
    );
}
