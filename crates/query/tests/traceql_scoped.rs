//! A scoped caller's TraceQL search on `/api/traces?q=` sees its own
//! clusters only: the query is evaluated on the scope-cut trace, so
//! neither a filter on another cluster's spans nor a structural operator
//! through them finds anything, and a found trace shows the caller's spans
//! with the same warning as the form search. A real SQLite store, and two
//! real Postgres shards when `MERIDIAN_TEST_POSTGRES` is set; the routers
//! behind an `Extension(Scope)` layer, as the gateway's access layer adds.

use std::{collections::BTreeSet, sync::Arc};

use axum::{Extension, body::Body};
use http_body_util::BodyExt;
use model::{SpanKind, access::Scope};
use serde_json::{Value, json};
use store::{
    SpanStore,
    testsuite::{MS, SpanBuilder, T0},
};
use tower::ServiceExt;

const TRACE_1: &str = "5a000000000000000000000000000001";
const TRACE_2: &str = "5a000000000000000000000000000002";
/// What of cluster b must never reach a caller scoped to a.
const HIDDEN: &[&str] = &["api-b", "db-b", "\"b\""];

async fn backends() -> Vec<(&'static str, Arc<dyn SpanStore>)> {
    let mut out = vec![(
        "sqlite",
        store::open(&["sqlite::memory:".into()], &Default::default())
            .await
            .expect("open sqlite"),
    )];
    if let Some(server) = store::testsuite::pg::server_from_env("traceql scoped") {
        let urls = store::testsuite::pg::fresh_databases(&server, 2).await;
        out.push((
            "postgres",
            store::open(&urls, &store::StoreOptions::default())
                .await
                .expect("open postgres shards"),
        ));
    }
    out
}

/// Trace 1 crosses a → b (web-a calls api-b, which calls db-b, which
/// fails); trace 2 is b's alone.
async fn seed(store: &dyn SpanStore) {
    store
        .write(&[
            SpanBuilder::new(1, 1, "web-a")
                .name("GET /")
                .cluster("a")
                .at(0, 50)
                .build(),
            SpanBuilder::new(1, 2, "web-a")
                .name("call api")
                .kind(SpanKind::Client)
                .cluster("a")
                .parent(1)
                .at(1, 40)
                .build(),
            SpanBuilder::new(1, 3, "api-b")
                .name("serve")
                .cluster("b")
                .parent(2)
                .at(2, 30)
                .build(),
            SpanBuilder::new(1, 4, "db-b")
                .name("query")
                .cluster("b")
                .parent(3)
                .at(3, 10)
                .error("timeout")
                .build(),
            SpanBuilder::new(1, 5, "db-b")
                .name("query")
                .cluster("b")
                .parent(3)
                .at(4, 10)
                .build(),
            SpanBuilder::new(2, 1, "api-b")
                .name("serve")
                .cluster("b")
                .at(10, 5)
                .build(),
        ])
        .await
        .expect("write");
}

async fn search(store: &Arc<dyn SpanStore>, scope: &Scope, traceql: &str) -> Value {
    let q: String = form_urlencoded::byte_serialize(traceql.as_bytes()).collect();
    let (lo, hi) = ((T0 - 3_600_000 * MS) / 1_000, (T0 + 3_600_000 * MS) / 1_000);
    let uri = format!("/api/traces?q={q}&start={lo}&end={hi}&limit=20");
    let resp = query::router(Arc::clone(store))
        .layer(Extension(scope.clone()))
        .oneshot(
            http::Request::get(&uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(status, 200, "{traceql}: {body}");
    body
}

fn ids(body: &Value) -> BTreeSet<&str> {
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|t| t["traceID"].as_str())
        .collect()
}

#[tokio::test]
async fn a_scoped_traceql_search_sees_its_clusters_only() {
    for (backend, store) in backends().await {
        seed(store.as_ref()).await;
        let a = Scope::only(["a"]);
        // What a sees: trace 1, cut to its two spans, with the warning.
        for q in [
            "{}",
            r#"{ resource.service.name = "web-a" }"#,
            "{ kind = client }",
        ] {
            let body = search(&store, &a, q).await;
            assert_eq!(ids(&body), BTreeSet::from([TRACE_1]), "{backend}: {q}");
            let trace = &body["data"][0];
            assert_eq!(trace["spans"].as_array().map(Vec::len), Some(2), "{q}");
            assert_eq!(
                trace["warnings"],
                json!(["3 spans outside your access scope are hidden"]),
                "{backend}: {q}"
            );
            let text = body.to_string();
            for h in HIDDEN {
                assert!(!text.contains(h), "{backend}: {q} shows {h}: {text}");
            }
        }
        // b's spans match nothing for a: not by service, cluster, status,
        // nor through a structural operator, nor b's own trace 2.
        for q in [
            r#"{ resource.service.name = "api-b" }"#,
            r#"{ cluster = "b" }"#,
            r#"{ resource.k8s.cluster.name = "b" }"#,
            "{ status = error }",
            r#"{ cluster = "a" } >> { cluster = "b" }"#,
            r#"{ name = "call api" } > { name = "serve" }"#,
            r#"{ name = "serve" }"#,
        ] {
            let body = search(&store, &a, q).await;
            assert_eq!(body["data"], json!([]), "{backend}: {q}: {body}");
        }
        // The caller who sees every cluster finds them, unwarned.
        let all = Scope::All;
        for (q, want) in [
            (
                r#"{ cluster = "a" } >> { cluster = "b" && status = error }"#,
                vec![TRACE_1],
            ),
            (r#"{ name = "serve" }"#, vec![TRACE_1, TRACE_2]),
            ("{ status = error }", vec![TRACE_1]),
        ] {
            let body = search(&store, &all, q).await;
            assert_eq!(ids(&body), want.into_iter().collect(), "{backend}: {q}");
            assert_eq!(body["data"][0]["warnings"], Value::Null, "{backend}: {q}");
        }
        // Scoped to b: trace 2 whole, and trace 1 with a's two spans hidden.
        let body = search(&store, &Scope::only(["b"]), r#"{ name = "serve" }"#).await;
        assert_eq!(ids(&body), BTreeSet::from([TRACE_1, TRACE_2]), "{backend}");
        assert!(!body.to_string().contains("web-a"), "{backend}: {body}");
    }
}
