//! Read cases: trace by id, and the service and operation lists.

use std::sync::Arc;

use model::SpanKind;

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
