//! Every read is scoped: a cross-cluster trace a → b stored in a real
//! SQLite store, read through the real query routers by a caller scoped to
//! cluster a and by one that sees every cluster. The scoped caller sees a's
//! spans and one warning, and nothing of b; the unscoped one sees it all;
//! a route assembled without the access layer answers 500. The same over
//! two real Postgres shards when `MERIDIAN_TEST_POSTGRES` is set.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Extension, Router, body::Body};
use http_body_util::BodyExt;
use model::{Trace, access::Scope};
use serde_json::Value;
use store::{
    Record, RecordKind, SpanStore,
    sqlite::SqliteStore,
    testsuite::{SpanBuilder, trace_id},
};
use tower::ServiceExt;

const MS: u64 = 1_000_000;
/// a's services and b's: nothing of b's may reach a scoped caller.
const HIDDEN: &[&str] = &["api-b", "db-b", "\"b\"", "@b"];

fn now_ns() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after the epoch");
    u64::try_from(d.as_nanos()).expect("fits")
}

/// The backends under test: SQLite always, two Postgres shards when a
/// server is given.
async fn backends() -> Vec<Arc<dyn SpanStore>> {
    let sqlite: Arc<dyn SpanStore> = Arc::new(
        SqliteStore::open("sqlite::memory:")
            .await
            .expect("open sqlite"),
    );
    let mut out = vec![sqlite];
    if let Some(server) = store::testsuite::pg::server_from_env("scoped reads") {
        let urls = store::testsuite::pg::fresh_databases(&server, 2).await;
        out.push(
            store::open(&urls, &store::StoreOptions::default())
                .await
                .expect("open postgres shards"),
        );
    }
    out
}

/// Each backend holding the cross-cluster data ([`seed`]).
async fn cross_cluster_stores() -> Vec<Arc<dyn SpanStore>> {
    let mut out = Vec::new();
    for store in backends().await {
        seed(store.as_ref()).await;
        out.push(store);
    }
    out
}

/// Trace 1 crosses a → b (web-a calls api-b, which calls db-b); trace 2 is
/// b's alone and the newest; an edge record per hop of trace 1.
async fn seed(store: &dyn SpanStore) {
    let t0 = now_ns() - 60_000 * MS;
    store
        .write(&[
            SpanBuilder::new(1, 1, "web-a")
                .name("GET /")
                .cluster("a")
                .at_unix(t0, 50)
                .build(),
            SpanBuilder::new(1, 2, "web-a")
                .name("call api")
                .kind(model::SpanKind::Client)
                .cluster("a")
                .parent(1)
                .at_unix(t0 + MS, 40)
                .build(),
            SpanBuilder::new(1, 3, "api-b")
                .name("serve")
                .cluster("b")
                .parent(2)
                .at_unix(t0 + 2 * MS, 30)
                .build(),
            SpanBuilder::new(1, 4, "db-b")
                .name("query")
                .cluster("b")
                .parent(3)
                .at_unix(t0 + 3 * MS, 10)
                .build(),
            SpanBuilder::new(1, 5, "db-b")
                .name("query")
                .cluster("b")
                .parent(3)
                .at_unix(t0 + 4 * MS, 10)
                .build(),
            SpanBuilder::new(2, 1, "api-b")
                .name("serve")
                .cluster("b")
                .at_unix(t0 + 10 * MS, 5)
                .build(),
        ])
        .await
        .expect("write");
    let minute = t0 / 60_000 / MS;
    let edge = |parent: &str, child: &str| {
        let agg = stitch::EdgeAgg {
            calls: 3,
            ..Default::default()
        };
        Record {
            kind: RecordKind::Edge,
            key: format!("{minute:012}|{parent}|{child}|0"),
            time_ms: i64::try_from(minute * 60_000).expect("fits"),
            value: serde_json::to_vec(&agg).expect("encode"),
            trace: None,
        }
    };
    store
        .put_records(&[
            edge("web-a@a", "web-a@a"),
            edge("web-a@a", "api-b@b"),
            edge("api-b@b", "db-b@b"),
        ])
        .await
        .expect("edges");
}

fn routes(store: &Arc<dyn SpanStore>) -> Router {
    query::router(Arc::clone(store))
}

async fn get(router: Router, uri: &str) -> (u16, Value) {
    let resp = router
        .oneshot(
            http::Request::get(uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    )
}

async fn as_scope(store: &Arc<dyn SpanStore>, scope: &Scope, uri: &str) -> (u16, Value) {
    get(routes(store).layer(Extension(scope.clone())), uri).await
}

fn assert_nothing_of_b(uri: &str, body: &Value) {
    let text = body.to_string();
    for hidden in HIDDEN {
        assert!(!text.contains(hidden), "{uri} shows {hidden}: {text}");
    }
}

const TRACE_1: &str = "5a000000000000000000000000000001";
const TRACE_2: &str = "5a000000000000000000000000000002";

#[tokio::test]
async fn a_caller_scoped_to_a_sees_a_and_nothing_of_b() {
    for store in cross_cluster_stores().await {
        scoped_to_a(&store).await;
    }
}

async fn scoped_to_a(store: &Arc<dyn SpanStore>) {
    let a = Scope::only(["a"]);

    let (status, body) = as_scope(store, &a, "/api/services").await;
    assert_eq!(
        (status, &body["data"]),
        (200, &serde_json::json!(["web-a"]))
    );

    let (status, body) = as_scope(store, &a, "/api/services/api-b/operations").await;
    assert_eq!((status, &body["data"]), (200, &serde_json::json!([])));
    let (_, body) = as_scope(store, &a, "/api/operations?service=web-a").await;
    assert_eq!(body["total"], 2, "{body}");

    // Search: trace 2 (b's only, the newest) is neither found nor counted.
    for uri in [
        "/api/traces?service=web-a&limit=1",
        "/api/traces?limit=1",
        "/api/traces?service=api-b",
    ] {
        let (status, body) = as_scope(store, &a, uri).await;
        assert_eq!(status, 200, "{uri}: {body}");
        assert_nothing_of_b(uri, &body);
        let ids: Vec<&str> = body["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|t| t["traceID"].as_str())
            .collect();
        if uri.contains("api-b") {
            assert!(ids.is_empty(), "{uri}: {ids:?}");
        } else {
            assert_eq!(ids, [TRACE_1], "{uri}");
            assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(2));
        }
    }

    // Trace by id: a's two spans and exactly one warning counting b's three.
    for uri in [
        format!("/api/traces/{TRACE_1}"),
        format!("/api/traces/{TRACE_1}?raw=true"),
        format!("/api/traces?traceID={TRACE_1}"),
    ] {
        let (status, body) = as_scope(store, &a, &uri).await;
        assert_eq!(status, 200, "{uri}: {body}");
        let trace = &body["data"][0];
        assert_eq!(trace["spans"].as_array().map(Vec::len), Some(2), "{uri}");
        assert_eq!(
            trace["warnings"],
            serde_json::json!(["3 spans outside your access scope are hidden"]),
            "{uri}"
        );
        assert_eq!(trace["processes"].as_object().map(|p| p.len()), Some(1));
        assert_nothing_of_b(&uri, &body);
    }

    // A trace with no span in scope is the same 404 as a missing trace.
    let (hidden_status, hidden) = as_scope(store, &a, &format!("/api/traces/{TRACE_2}")).await;
    let (missing_status, missing) =
        as_scope(store, &a, "/api/traces/5a0000000000000000000000000000ff").await;
    assert_eq!((hidden_status, &hidden), (missing_status, &missing));
    assert_eq!(hidden_status, 404);
    for uri in [
        format!("/api/v1/traces/{TRACE_2}/summary"),
        format!("/api/v1/traces/{TRACE_2}/links"),
    ] {
        assert_eq!(as_scope(store, &a, &uri).await.0, 404, "{uri}");
    }
    let (status, body) = as_scope(store, &a, &format!("/api/traces?traceID={TRACE_2}")).await;
    assert_eq!((status, &body["data"]), (200, &serde_json::json!([])));

    // The summary counts a's spans only.
    let uri = format!("/api/v1/traces/{TRACE_1}/summary");
    let (status, body) = as_scope(store, &a, &uri).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spanCount"], 2);
    assert_eq!(body["clusters"], serde_json::json!(["a"]));
    assert_nothing_of_b(&uri, &body);

    // Graph and dependencies: only the edge with both ends in a.
    let (status, body) = as_scope(store, &a, "/api/v1/graph").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["edges"].as_array().map(Vec::len), Some(1), "{body}");
    assert_nothing_of_b("/api/v1/graph", &body);
    let (status, body) = as_scope(store, &a, "/api/dependencies").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        serde_json::json!([]),
        "calls inside web-a are left out"
    );

    // Storage: a's row only.
    let (status, body) = as_scope(store, &a, "/api/v1/storage").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spans"], 2, "{body}");
    assert_nothing_of_b("/api/v1/storage", &body);
}

#[tokio::test]
async fn a_caller_that_sees_every_cluster_sees_everything() {
    for store in cross_cluster_stores().await {
        sees_everything(&store).await;
    }
}

async fn sees_everything(store: &Arc<dyn SpanStore>) {
    let all = Scope::All;
    let (_, body) = as_scope(store, &all, "/api/services").await;
    assert_eq!(body["data"], serde_json::json!(["api-b", "db-b", "web-a"]));
    let (_, body) = as_scope(store, &all, "/api/traces?limit=1").await;
    assert_eq!(
        body["data"][0]["traceID"], TRACE_2,
        "the newest trace first"
    );
    let (status, body) = as_scope(store, &all, &format!("/api/traces/{TRACE_1}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(5));
    assert_eq!(body["data"][0]["warnings"], Value::Null);
    let (_, body) = as_scope(store, &all, "/api/v1/graph").await;
    assert_eq!(body["edges"].as_array().map(Vec::len), Some(3));
    let (_, body) = as_scope(store, &all, "/api/dependencies").await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    let (_, body) = as_scope(store, &all, "/api/v1/storage").await;
    assert_eq!(body["spans"], 6);
}

#[tokio::test]
async fn a_caller_scoped_to_b_sees_the_warning_from_the_other_side() {
    for store in cross_cluster_stores().await {
        scoped_to_b(&store).await;
    }
}

async fn scoped_to_b(store: &Arc<dyn SpanStore>) {
    let b = Scope::only(["b"]);
    let (_, body) = as_scope(store, &b, &format!("/api/traces/{TRACE_1}")).await;
    let trace = &body["data"][0];
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        trace["warnings"],
        serde_json::json!(["2 spans outside your access scope are hidden"])
    );
    assert!(!body.to_string().contains("web-a"), "{body}");
}

#[tokio::test]
async fn a_route_without_the_access_layer_fails_closed() {
    let store = &cross_cluster_stores().await[0];
    let uris = [
        "/api/services".to_owned(),
        "/api/services/web-a/operations".to_owned(),
        "/api/operations?service=web-a".to_owned(),
        "/api/traces?service=web-a".to_owned(),
        format!("/api/traces/{TRACE_1}"),
        "/api/dependencies".to_owned(),
        "/api/v1/graph".to_owned(),
        "/api/v1/clusters".to_owned(),
        format!("/api/v1/traces/{TRACE_1}/summary"),
        format!("/api/v1/traces/{TRACE_1}/links"),
        "/api/v1/storage".to_owned(),
        "/api/v3/services".to_owned(),
        "/api/v3/operations?service=web-a".to_owned(),
        format!("/api/v3/traces/{TRACE_1}"),
        format!("/api/v3/traces?{}", v3_window()),
        format!("/api/v3/trace-summaries?{}", v3_window()),
    ];
    for uri in &uris {
        let (status, body) = get(routes(store), uri).await;
        assert_eq!(status, 500, "{uri}: {body}");
        assert!(!body.to_string().contains("web-a\""), "{uri}: {body}");
    }
}

/// The store itself: what it returns for a scoped search holds a span in
/// scope (the query layer then hides the rest).
#[tokio::test]
async fn the_store_search_applies_the_scope() {
    for store in cross_cluster_stores().await {
        store_search(&store).await;
    }
}

async fn store_search(store: &Arc<dyn SpanStore>) {
    let q = model::TraceQuery {
        scope: Scope::only(["a"]),
        start_min_unix_nano: now_ns() - 3_600_000 * MS,
        start_max_unix_nano: now_ns() + 3_600_000 * MS,
        ..store::testsuite::any_query()
    };
    let found: Vec<Trace> = store.find_traces(&q).await.expect("search");
    assert_eq!(
        found.iter().map(|t| t.trace_id).collect::<Vec<_>>(),
        [trace_id(1)]
    );
}

/// RFC 3339 of Unix nanoseconds (UTC, whole seconds).
fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The last two hours, as api_v3 takes a window.
fn v3_window() -> String {
    let now = now_ns();
    format!(
        "query.startTimeMin={}&query.startTimeMax={}",
        rfc3339(now - 2 * 3_600_000 * MS),
        rfc3339(now + 60_000 * MS)
    )
}

/// The same data through Jaeger's api_v3: a caller scoped to a sees a's
/// services, spans and summaries only, and b's trace is a 404.
#[tokio::test]
async fn api_v3_scoped_to_a_shows_nothing_of_b() {
    for store in cross_cluster_stores().await {
        v3_scoped_to_a(&store).await;
    }
}

async fn v3_scoped_to_a(store: &Arc<dyn SpanStore>) {
    let a = Scope::only(["a"]);
    let w = v3_window();
    let (status, body) = as_scope(store, &a, "/api/v3/services").await;
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"services": ["web-a"]}))
    );
    let (status, body) = as_scope(store, &a, "/api/v3/operations?service=api-b").await;
    assert_eq!((status, body), (200, serde_json::json!({"operations": []})));

    let span_names = |body: &Value| -> Vec<String> {
        body["result"]["resourceSpans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
            .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    };
    for uri in [
        format!("/api/v3/traces?{w}"),
        format!("/api/v3/traces/{TRACE_1}"),
    ] {
        let (status, body) = as_scope(store, &a, &uri).await;
        assert_eq!(status, 200, "{uri}: {body}");
        assert_nothing_of_b(&uri, &body);
        let mut names = span_names(&body);
        names.sort();
        assert_eq!(names, ["GET /", "call api"], "{uri}");
        assert!(
            body.to_string()
                .contains("3 spans outside your access scope are hidden"),
            "{uri}: {body}"
        );
    }
    let (status, body) = as_scope(
        store,
        &a,
        &format!("/api/v3/traces?{w}&query.serviceName=api-b"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let hidden = as_scope(store, &a, &format!("/api/v3/traces/{TRACE_2}")).await;
    let missing = as_scope(store, &a, "/api/v3/traces/5a0000000000000000000000000000ff").await;
    assert_eq!(hidden, missing);
    assert_eq!(hidden.0, 404);

    let uri = format!("/api/v3/trace-summaries?{w}");
    let (status, body) = as_scope(store, &a, &uri).await;
    assert_eq!(status, 200, "{body}");
    assert_nothing_of_b(&uri, &body);
    assert_eq!(
        body["summaries"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    let s = &body["summaries"][0];
    assert_eq!(s["traceId"], TRACE_1);
    assert_eq!(s["spanCount"], 2);
    assert_eq!(s["rootServiceName"], "web-a");
    assert_eq!(
        s["services"],
        serde_json::json!([{"name": "web-a", "spanCount": 2}])
    );

    // Every cluster: all five spans of trace 1 and b's trace too.
    let (_, body) = as_scope(store, &Scope::All, &uri).await;
    assert_eq!(
        body["summaries"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
}
