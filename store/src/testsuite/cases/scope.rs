//! Scope cases (`model::access::Scope`): the services and operations lists
//! and search answer only for the clusters in the caller's scope, and a
//! trace with no span in scope is never returned nor counted against the
//! limit.

use std::sync::Arc;

use model::{SpanKind, TraceQuery, access::Scope};

use super::{B, found, query};
use crate::{Operation, SpanStore};

fn op(name: &str) -> Operation {
    Operation {
        name: name.to_owned(),
        span_kind: SpanKind::Server,
    }
}

pub(super) async fn lists_answer_for_the_scope(store: Arc<dyn SpanStore>) {
    store
        .write(&[
            B::new(1, 1, "web").name("GET /").cluster("a").build(),
            B::new(1, 2, "api")
                .name("load")
                .cluster("b")
                .parent(1)
                .build(),
            B::new(2, 1, "shared").name("on-a").cluster("a").build(),
            B::new(3, 1, "shared").name("on-b").cluster("b").build(),
        ])
        .await
        .expect("write");
    let a = Scope::only(["a"]);
    assert_eq!(
        store.services(&a).await.expect("services"),
        ["shared", "web"]
    );
    assert_eq!(
        store.services(&Scope::only(["b"])).await.expect("services"),
        ["api", "shared"]
    );
    assert_eq!(
        store.services(&Scope::All).await.expect("services"),
        ["api", "shared", "web"]
    );
    assert_eq!(
        store
            .services(&Scope::only(["a", "b"]))
            .await
            .expect("services"),
        ["api", "shared", "web"]
    );
    assert!(
        store
            .services(&Scope::only(Vec::<String>::new()))
            .await
            .expect("services")
            .is_empty()
    );
    assert_eq!(
        store.operations("shared", None, &a).await.expect("ops"),
        [op("on-a")]
    );
    assert_eq!(
        store
            .operations("shared", Some(SpanKind::Server), &a)
            .await
            .expect("ops"),
        [op("on-a")]
    );
    assert_eq!(
        store
            .operations("shared", None, &Scope::All)
            .await
            .expect("ops"),
        [op("on-a"), op("on-b")]
    );
    assert!(
        store
            .operations("api", None, &a)
            .await
            .expect("ops")
            .is_empty(),
        "b's service has no operations in a's scope"
    );
}

pub(super) async fn search_never_counts_a_hidden_trace(store: Arc<dyn SpanStore>) {
    store
        .write(&[
            // 1 crosses from a into b; 2 is b's only, and the newest; 3 is a's.
            B::new(1, 1, "web").cluster("a").at(0, 5).build(),
            B::new(1, 2, "api").cluster("b").parent(1).at(10, 1).build(),
            B::new(2, 1, "api").cluster("b").at(20, 1).build(),
            B::new(3, 1, "web").cluster("a").at(5, 1).build(),
        ])
        .await
        .expect("write");
    let scoped = |scope: Scope, limit: usize| TraceQuery {
        scope,
        limit,
        ..query()
    };
    // Trace 2 is the most recent: had it been counted before the limit, a
    // caller scoped to a would see one trace, not two.
    assert_eq!(found(&store, &scoped(Scope::only(["a"]), 2)).await, [3, 1]);
    assert_eq!(found(&store, &scoped(Scope::only(["b"]), 10)).await, [2, 1]);
    assert_eq!(found(&store, &scoped(Scope::All, 10)).await, [2, 1, 3]);
    assert!(
        found(&store, &scoped(Scope::only(Vec::<String>::new()), 10))
            .await
            .is_empty()
    );
    assert!(
        found(&store, &scoped(Scope::only(["c"]), 10))
            .await
            .is_empty()
    );
    // The matching span must itself be in scope: b's service, searched in
    // a's scope, finds nothing, though trace 1 holds a span of it.
    assert!(
        found(
            &store,
            &TraceQuery {
                service: Some("api".into()),
                ..scoped(Scope::only(["a"]), 10)
            }
        )
        .await
        .is_empty()
    );
    let both = store
        .search(&scoped(Scope::only(["a"]), 10))
        .await
        .expect("search");
    assert!(both.warnings.is_empty(), "{:?}", both.warnings);
    assert_eq!(
        both.traces[1].spans.len(),
        2,
        "the store returns whole traces; the query layer hides the rest"
    );
}
