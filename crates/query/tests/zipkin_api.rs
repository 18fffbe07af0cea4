//! Golden shapes of the Zipkin v2 query API (`query::zipkin`), over a real
//! SQLite store fed through the real Zipkin receiver path
//! (`proto::zipkin` → OTLP → the cluster stamp → `proto::convert`).
//!
//! Fixtures (`fixtures/zipkin/`, see its README): `api-example.json` has
//! the fields of the `Span` example of openzipkin/zipkin-api
//! `zipkin2-api.yaml`; `messaging.json` has the shape of Zipkin Lens's
//! `zipkin-lens/testdata/messaging.json`. A span sent in Zipkin v2 JSON
//! must come back field by field as sent (names, types, µs units,
//! lower-hex ids of 16 or 32 characters), plus the `k8s.cluster.name` tag
//! the gateway stamps. Lists are JSON arrays of strings as
//! `zipkin2-api.yaml` defines them; errors and the 404 are plain text, as
//! Zipkin's `ZipkinQueryApiV2` answers (`"<traceId> not found"`).

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Extension, Router, body::Body};
use http_body_util::BodyExt;
use model::{ClusterId, access::Scope};
use serde_json::{Value, json};
use store::{Record, RecordKind, SpanStore, sqlite::SqliteStore};
use tower::ServiceExt;

const API_EXAMPLE: &str = include_str!("fixtures/zipkin/api-example.json");
const MESSAGING: &str = include_str!("fixtures/zipkin/messaging.json");
const MESSAGING_ID: &str = "7c41b0e62f3a9d15e0d4a8b1c9f27e63";
const EXAMPLE_ID: &str = "5af7183fb1d4cf5f";

fn now_us() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after the epoch");
    u64::try_from(d.as_micros()).expect("fits")
}

/// The fixture with its earliest timestamp moved to `base_us` (every span
/// and annotation time shifted by the same amount).
fn shifted(fixture: &str, base_us: u64) -> Value {
    let mut spans: Value = serde_json::from_str(fixture).expect("fixture json");
    let first = spans
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["timestamp"].as_u64())
        .min()
        .expect("a timestamp");
    let shift = |v: &mut Value| {
        if let Some(t) = v.as_u64() {
            *v = json!(t - first + base_us);
        }
    };
    for s in spans.as_array_mut().expect("array") {
        shift(&mut s["timestamp"]);
        if let Some(anns) = s.get_mut("annotations").and_then(Value::as_array_mut) {
            for a in anns {
                shift(&mut a["timestamp"]);
            }
        }
    }
    spans
}

/// Sends Zipkin v2 JSON the way the agent's receiver and the gateway's
/// write path treat it, for `cluster`.
async fn ingest(store: &dyn SpanStore, spans: &Value, cluster: &str) {
    let bytes = serde_json::to_vec(spans).expect("encode");
    let decoded = proto::zipkin::decode_json(&bytes, &proto::bounds::DecodeLimits::RECEIVER)
        .expect("valid zipkin json");
    let mut req = proto::zipkin::to_otlp(decoded);
    let sane = proto::validate::sanitize(&mut req);
    assert_eq!(sane.rejected, 0);
    let cluster = ClusterId::new(cluster).expect("cluster");
    proto::convert::stamp_cluster(&mut req, &cluster);
    let model = proto::convert::to_model(&req, &cluster);
    store.write(&model).await.expect("write");
}

/// An edge record as the stitcher writes it (`stitch::records`).
fn edge(minute_ms: u64, parent: &str, child: &str, calls: u64, errors: u64) -> Record {
    let minute = minute_ms / 60_000;
    let agg = stitch::EdgeAgg {
        calls,
        errors,
        ..Default::default()
    };
    Record {
        kind: RecordKind::Edge,
        key: format!("{minute:012}|{parent}|{child}|0"),
        time_ms: i64::try_from(minute * 60_000).expect("fits"),
        value: serde_json::to_vec(&agg).expect("encode"),
        trace: None,
    }
}

struct Fixture {
    store: Arc<dyn SpanStore>,
    messaging: Value,
    example: Value,
    /// b's own trace (`api-b`), hidden from a caller scoped to a.
    other: Value,
    base_us: u64,
}

async fn fixture() -> Fixture {
    let store: Arc<dyn SpanStore> =
        Arc::new(SqliteStore::open("sqlite::memory:").await.expect("sqlite"));
    let base_us = now_us() - 600_000_000;
    let messaging = shifted(MESSAGING, base_us);
    let example = shifted(API_EXAMPLE, base_us + 1_000_000);
    let other = json!([{
        "traceId": "00000000000000b2", "id": "00000000000000b3", "kind": "SERVER",
        "name": "serve", "timestamp": base_us + 2_000_000, "duration": 10,
        "localEndpoint": {"serviceName": "api-b"}, "remoteEndpoint": {"serviceName": "frontend"},
    }]);
    ingest(store.as_ref(), &messaging, "a").await;
    ingest(store.as_ref(), &example, "a").await;
    ingest(store.as_ref(), &other, "b").await;
    let minute = base_us / 1_000;
    store
        .put_records(&[
            edge(minute, "frontend@a", "backend@a", 3, 1),
            edge(minute, "frontend@a", "frontend@a", 9, 0),
            edge(minute, "backend@a", "db@a", 2, 0),
            edge(minute, "frontend@a", "api-b@b", 4, 0),
        ])
        .await
        .expect("edges");
    Fixture {
        store,
        messaging,
        example,
        other,
        base_us,
    }
}

fn routes(store: &Arc<dyn SpanStore>) -> Router {
    let keys = store::DEFAULT_INDEXED_TAGS
        .iter()
        .map(|k| (*k).to_owned())
        .chain(["rabbit.queue".to_owned()])
        .collect();
    query::zipkin::router(Arc::clone(store), query::QueryLimits::default(), keys)
}

struct Answer {
    status: u16,
    content_type: String,
    warning: Option<String>,
    body: Value,
}

async fn get_with(router: Router, uri: &str) -> Answer {
    let resp = router
        .oneshot(
            http::Request::get(uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let warning = header(query::zipkin::WARNING_HEADER);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        content_type,
        warning,
        body,
    }
}

async fn get(f: &Fixture, scope: &Scope, uri: &str) -> Answer {
    get_with(routes(&f.store).layer(Extension(scope.clone())), uri).await
}

/// A span as sent, with the cluster tag the gateway stamps.
fn as_stored(span: &Value, cluster: &str) -> Value {
    let mut s = span.clone();
    s.as_object_mut()
        .expect("object")
        .entry("tags")
        .or_insert_with(|| json!({}))["k8s.cluster.name"] = json!(cluster);
    s
}

fn sorted_by_timestamp(spans: &Value) -> Vec<Value> {
    let mut v = spans.as_array().expect("array").clone();
    v.sort_by_key(|s| s["timestamp"].as_u64());
    v
}

fn assert_text_error(a: &Answer, status: u16, needle: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert!(
        a.content_type.starts_with("text/plain"),
        "{}",
        a.content_type
    );
    let text = a.body.as_str().expect("a text body");
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
}

#[tokio::test]
async fn a_trace_comes_back_field_by_field() {
    let f = fixture().await;
    for prefix in ["", "/zipkin"] {
        let a = get(
            &f,
            &Scope::All,
            &format!("{prefix}/api/v2/trace/{MESSAGING_ID}"),
        )
        .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert!(a.content_type.starts_with("application/json"));
        let want: Vec<Value> = sorted_by_timestamp(&f.messaging)
            .iter()
            .map(|s| as_stored(s, "a"))
            .collect();
        assert_eq!(a.body, Value::Array(want), "{prefix}");
        assert_eq!(a.warning, None);
    }
    // A 64-bit id stays 16 characters; the path takes upper case too.
    let a = get(&f, &Scope::All, "/api/v2/trace/5AF7183FB1D4CF5F").await;
    assert_eq!(a.body, json!([as_stored(&f.example[0], "a")]));
    let span = &a.body[0];
    assert_eq!(span["traceId"].as_str().map(str::len), Some(16));
    assert!(span["timestamp"].is_u64() && span["duration"].is_u64());
    assert!(span["localEndpoint"]["port"].is_u64());
    // Zipkin's 404: text, the normalized id, "not found".
    let a = get(&f, &Scope::All, "/api/v2/trace/00000000000000aa").await;
    assert_text_error(&a, 404, "00000000000000aa not found");
    assert_eq!(a.body, json!("00000000000000aa not found"));
    assert_text_error(&get(&f, &Scope::All, "/api/v2/trace/xyz").await, 400, "xyz");
}

#[tokio::test]
async fn lists_are_arrays_of_names() {
    let f = fixture().await;
    let all = Scope::All;
    for prefix in ["", "/zipkin"] {
        let a = get(&f, &all, &format!("{prefix}/api/v2/services")).await;
        assert_eq!(a.body, json!(["api-b", "backend", "frontend"]), "{prefix}");
    }
    let a = get(&f, &all, "/api/v2/spans?serviceName=frontend").await;
    assert_eq!(a.body, json!(["get /order", "publish"]));
    let a = get(&f, &all, "/api/v2/remoteServices?serviceName=backend").await;
    assert_eq!(a.body, json!(["rabbitmq"]));
    let a = get(&f, &all, "/api/v2/remoteServices?serviceName=api-b").await;
    assert_eq!(a.body, json!(["frontend"]));
    for uri in ["/api/v2/spans", "/api/v2/remoteServices?serviceName="] {
        assert_text_error(&get(&f, &all, uri).await, 400, "serviceName");
    }
    // The indexed keys, sorted; values of a configured key; [] otherwise.
    let a = get(&f, &all, "/api/v2/autocompleteKeys").await;
    let keys: Vec<&str> = a
        .body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        keys.contains(&"http.method") && keys.contains(&"rabbit.queue"),
        "{keys:?}"
    );
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    // Zipkin shows these as `kind` and `remoteEndpoint`, not as tags.
    assert!(
        !keys.contains(&"span.kind") && !keys.contains(&"peer.service"),
        "{keys:?}"
    );
    let a = get(&f, &all, "/api/v2/autocompleteValues?key=http.method").await;
    assert_eq!(a.body, json!(["GET"]));
    let a = get(&f, &all, "/api/v2/autocompleteValues?key=rabbit.queue").await;
    assert_eq!(a.body, json!(["orders"]));
    let a = get(&f, &all, "/api/v2/autocompleteValues?key=http.path").await;
    assert_eq!(a.body, json!([]));
    assert_text_error(
        &get(&f, &all, "/api/v2/autocompleteValues").await,
        400,
        "key",
    );
    // Lens's settings, with Zipkin's defaults.
    let a = get(&f, &all, "/zipkin/config.json").await;
    assert_eq!(a.body["searchEnabled"], json!(true));
    assert_eq!(a.body["queryLimit"], json!(10));
    assert_eq!(a.body["defaultLookback"], json!(900_000));
    assert_eq!(a.body["dependency"]["enabled"], json!(true));
}

fn trace_ids(body: &Value) -> Vec<String> {
    body.as_array()
        .expect("a list of traces")
        .iter()
        .map(|t| t[0]["traceId"].as_str().expect("traceId").to_owned())
        .collect()
}

#[tokio::test]
async fn searches_take_zipkins_parameters() {
    let f = fixture().await;
    let all = Scope::All;
    let end_ms = f.base_us / 1_000 + 60_000;
    let w = format!("endTs={end_ms}&lookback=3600000");
    let search = |q: &str| format!("/api/v2/traces?{w}&{q}");
    let a = get(&f, &all, &search("serviceName=backend")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    // A list of traces, each a list of spans in the shape of /trace/{id}.
    let mut ids = trace_ids(&a.body);
    ids.sort();
    assert_eq!(ids, [EXAMPLE_ID, MESSAGING_ID]);
    let messaging = a
        .body
        .as_array()
        .expect("traces")
        .iter()
        .find(|t| t[0]["traceId"] == MESSAGING_ID)
        .expect("messaging trace");
    assert_eq!(messaging.as_array().map(Vec::len), Some(4));
    for (q, want) in [
        ("serviceName=frontend&spanName=publish", vec![MESSAGING_ID]),
        ("serviceName=frontend&spanName=all", vec![MESSAGING_ID]),
        ("spanName=get%20%2Fapi", vec![EXAMPLE_ID]),
        (
            "serviceName=backend&remoteServiceName=rabbitmq",
            vec![MESSAGING_ID],
        ),
        ("annotationQuery=rabbit.queue%3Dorders", vec![MESSAGING_ID]),
        (
            "annotationQuery=http.method%3DGET%20and%20http.path%3D%2Fapi",
            vec![EXAMPLE_ID],
        ),
        // Bare words: an annotation value, a tag key, `error`.
        ("annotationQuery=retried", vec![MESSAGING_ID]),
        ("annotationQuery=rabbit.exchange", vec![MESSAGING_ID]),
        (
            "serviceName=backend&annotationQuery=error",
            vec![MESSAGING_ID],
        ),
        ("annotationQuery=nothing-has-this", vec![]),
        // µs: the 1,431 µs example span, not the 2,839 µs server span.
        ("minDuration=1000&maxDuration=2000", vec![EXAMPLE_ID]),
        ("minDuration=2800", vec![MESSAGING_ID]),
        ("serviceName=api-b&limit=5", vec!["00000000000000b2"]),
    ] {
        let a = get(&f, &all, &search(q)).await;
        assert_eq!(a.status, 200, "{q}: {:?}", a.body);
        assert_eq!(trace_ids(&a.body), want, "{q}");
    }
    assert_eq!(
        trace_ids(&get(&f, &all, &search("limit=1")).await.body).len(),
        1
    );
    // A window before the data finds nothing.
    let early = format!(
        "/api/v2/traces?endTs={}&lookback=60000",
        f.base_us / 1_000 - 120_000
    );
    assert_eq!(get(&f, &all, &early).await.body, json!([]));
    for (q, param) in [
        ("limit=0", "limit"),
        ("lookback=0", "lookback"),
        ("lookback=999999999999", "lookback"),
        ("endTs=-5", "endTs"),
        ("maxDuration=10", "maxDuration"),
        ("minDuration=abc", "minDuration"),
    ] {
        let a = get(&f, &all, &format!("/api/v2/traces?{q}")).await;
        assert_text_error(&a, 400, param);
    }
}

#[tokio::test]
async fn trace_many_and_dependencies() {
    let f = fixture().await;
    let all = Scope::All;
    let a = get(
        &f,
        &all,
        &format!("/api/v2/traceMany?traceIds={MESSAGING_ID},{EXAMPLE_ID},00000000000000aa"),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let mut ids = trace_ids(&a.body);
    ids.sort();
    assert_eq!(ids, [EXAMPLE_ID, MESSAGING_ID], "missing ids are left out");
    let a = get(
        &f,
        &all,
        &format!("/api/v2/traceMany?traceIds={EXAMPLE_ID}"),
    )
    .await;
    assert_text_error(&a, 400, "/api/v2/trace/{traceId}");
    let a = get(
        &f,
        &all,
        &format!("/api/v2/traceMany?traceIds={EXAMPLE_ID},{EXAMPLE_ID}"),
    )
    .await;
    assert_text_error(&a, 400, "redundant traceId");
    assert_text_error(&get(&f, &all, "/api/v2/traceMany").await, 400, "traceIds");

    // DependencyLink: parent, child, callCount, errorCount only when > 0;
    // calls inside one service are not links.
    let end_ms = f.base_us / 1_000 + 120_000;
    let uri = format!("/api/v2/dependencies?endTs={end_ms}&lookback=3600000");
    let a = get(&f, &all, &uri).await;
    assert_eq!(
        a.body,
        json!([
            {"parent": "backend", "child": "db", "callCount": 2},
            {"parent": "frontend", "child": "api-b", "callCount": 4},
            {"parent": "frontend", "child": "backend", "callCount": 3, "errorCount": 1},
        ])
    );
    let a = get(&f, &all, "/api/v2/dependencies?endTs=1000&lookback=0").await;
    assert_text_error(&a, 400, "lookback");
}

#[tokio::test]
async fn a_caller_scoped_to_a_sees_nothing_of_b() {
    let f = fixture().await;
    let a_only = Scope::only(["a"]);
    let end_ms = f.base_us / 1_000 + 120_000;
    let w = format!("endTs={end_ms}&lookback=3600000");
    let a = get(&f, &a_only, "/api/v2/services").await;
    assert_eq!(a.body, json!(["backend", "frontend"]));
    assert_eq!(
        get(&f, &a_only, "/api/v2/spans?serviceName=api-b")
            .await
            .body,
        json!([])
    );
    let a = get(
        &f,
        &a_only,
        &format!("/api/v2/traces?{w}&serviceName=api-b"),
    )
    .await;
    assert_eq!(a.body, json!([]));
    let a = get(&f, &a_only, &format!("/api/v2/traces?{w}&limit=100")).await;
    let ids = trace_ids(&a.body);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!a.body.to_string().contains("api-b"));
    let b_trace = f.other[0]["traceId"].as_str().expect("id");
    let a = get(&f, &a_only, &format!("/api/v2/trace/{b_trace}")).await;
    assert_text_error(&a, 404, "not found");
    let a = get(
        &f,
        &a_only,
        &format!("/api/v2/traceMany?traceIds={b_trace},{EXAMPLE_ID}"),
    )
    .await;
    assert_eq!(trace_ids(&a.body), [EXAMPLE_ID]);
    let a = get(&f, &a_only, &format!("/api/v2/dependencies?{w}")).await;
    assert!(!a.body.to_string().contains("api-b"), "{}", a.body);
    assert_eq!(a.body.as_array().map(Vec::len), Some(2));
    let a = get(&f, &a_only, "/api/v2/remoteServices?serviceName=api-b").await;
    assert_eq!(a.body, json!([]));
    // b sees its own trace.
    let a = get(&f, &Scope::only(["b"]), &format!("/api/v2/trace/{b_trace}")).await;
    assert_eq!(a.body, json!([as_stored(&f.other[0], "b")]));
}

#[tokio::test]
async fn without_the_access_layer_every_route_fails_closed() {
    let f = fixture().await;
    for uri in [
        "/api/v2/services".to_owned(),
        "/api/v2/spans?serviceName=frontend".to_owned(),
        "/api/v2/traces".to_owned(),
        format!("/api/v2/trace/{MESSAGING_ID}"),
        "/api/v2/dependencies".to_owned(),
        "/api/v2/autocompleteKeys".to_owned(),
        "/zipkin/config.json".to_owned(),
    ] {
        let a = get_with(routes(&f.store), &uri).await;
        assert_eq!(a.status, 500, "{uri}");
        assert!(!a.body.to_string().contains("frontend"), "{uri}");
    }
}

#[tokio::test]
async fn a_trace_over_the_span_cap_is_truncated_and_says_so() {
    let store: Arc<dyn SpanStore> =
        Arc::new(SqliteStore::open("sqlite::memory:").await.expect("sqlite"));
    let spans: Vec<_> = (1..=8u64)
        .map(|i| {
            store::testsuite::SpanBuilder::new(77, i, "api")
                .at(i, 1)
                .build()
        })
        .collect();
    store.write(&spans).await.expect("write");
    let limits = query::QueryLimits {
        max_trace_spans: 5,
        ..query::QueryLimits::default()
    };
    let hex = store::testsuite::trace_id(77).to_hex();
    let router =
        query::zipkin::router(Arc::clone(&store), limits, Vec::new()).layer(Extension(Scope::All));
    let a = get_with(router, &format!("/api/v2/trace/{hex}")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body.as_array().map(Vec::len), Some(5));
    let warning = a.warning.expect("the truncation is said in the header");
    assert!(warning.contains("truncated"), "{warning}");
    // Scoped to a cluster holding none of it: as missing as an absent trace.
    let a = get_with(
        query::zipkin::router(store, limits, Vec::new()).layer(Extension(Scope::only(["x"]))),
        &format!("/api/v2/trace/{hex}"),
    )
    .await;
    assert_text_error(&a, 404, "not found");
}

#[tokio::test]
async fn store_errors_reach_the_client_as_a_fixed_text() {
    let secret = "connection to 10.9.8.7:5432 refused for user meridian password=hunter2";
    let fake = Arc::new(store::testsuite::fake::FakeStore::default());
    fake.set_search(Err(secret.into()));
    let store: Arc<dyn SpanStore> = fake;
    for uri in [
        "/api/v2/traces?serviceName=a",
        "/api/v2/remoteServices?serviceName=a",
        // FakeStore keeps no records: the edge scan fails.
        "/api/v2/dependencies",
    ] {
        let a = get(
            &Fixture {
                store: Arc::clone(&store),
                messaging: Value::Null,
                example: Value::Null,
                other: Value::Null,
                base_us: 0,
            },
            &Scope::All,
            uri,
        )
        .await;
        assert!(a.status == 503 || a.status == 500, "{uri}: {}", a.status);
        assert!(a.content_type.starts_with("text/plain"), "{uri}");
        let text = a.body.to_string();
        for leaked in ["10.9.8.7", "hunter2", "not supported"] {
            assert!(!text.contains(leaked), "{uri} leaks {leaked:?}: {text}");
        }
    }
}
