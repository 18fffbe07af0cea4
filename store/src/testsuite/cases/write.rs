//! Write cases: every field survives a round trip, rewrites are
//! idempotent, and batches of many traces or many spans are stored whole.

use std::sync::Arc;

use model::{AttrValue, KeyValue, SpanKind, TraceQuery};

use super::{B, found, query, tag};
use crate::{SpanStore, testsuite::trace_id};

pub(super) async fn roundtrip_preserves_every_field(store: Arc<dyn SpanStore>) {
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

pub(super) async fn rewrite_is_idempotent(store: Arc<dyn SpanStore>) {
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

pub(super) async fn many_traces_in_one_batch(store: Arc<dyn SpanStore>) {
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

pub(super) async fn large_batch(store: Arc<dyn SpanStore>) {
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
    assert_eq!(
        store
            .services(&model::access::Scope::All)
            .await
            .expect("services")
            .len(),
        7
    );
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
