//! Search cases: by service and operation, by tags (all on one span), by
//! time window and duration, most recent first up to the limit.

use std::sync::Arc;

use model::{AttrValue, KeyValue, SpanKind, TagFilter, TraceQuery};

use super::{B, found, query, tag};
use crate::{
    SpanStore,
    testsuite::{MS, T0},
};

pub(super) async fn find_by_service_and_operation(store: Arc<dyn SpanStore>) {
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

pub(super) async fn find_by_tags(store: Arc<dyn SpanStore>) {
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

pub(super) async fn tags_must_match_within_one_span(store: Arc<dyn SpanStore>) {
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

pub(super) async fn time_window_and_durations(store: Arc<dyn SpanStore>) {
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

pub(super) async fn limit_and_most_recent_first(store: Arc<dyn SpanStore>) {
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
