//! Golden shapes of api_v3: the data behind Jaeger's own HTTP-gateway
//! snapshots (`fixtures/jaeger_v3/README.md` names each source) stored in a
//! real SQLite store and read through the real query router; each answer
//! must equal its fixture as a JSON value: every field name, type, unit
//! and id encoding, the 404 and 400 bodies included.

use std::{path::PathBuf, sync::Arc};

use axum::{Extension, body::Body};
use http_body_util::BodyExt;
use model::{SpanKind, StatusCode, TraceId, access::Scope};
use serde_json::{Value, json};
use store::{SpanStore, sqlite::SqliteStore, testsuite::SpanBuilder};
use tower::ServiceExt;

/// The window of the searches: the data sits in the first hour of 1970,
/// as in Jaeger's test.
const WINDOW: &str =
    "query.startTimeMin=1970-01-01T00:00:00Z&query.startTimeMax=1970-01-01T01:00:00Z";

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jaeger_v3")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

async fn store_with(spans: Vec<model::Span>) -> Arc<dyn SpanStore> {
    let store = SqliteStore::open("sqlite::memory:")
        .await
        .expect("open sqlite");
    store.write(&spans).await.expect("write");
    Arc::new(store)
}

async fn get(store: &Arc<dyn SpanStore>, uri: &str) -> (u16, Value) {
    let resp = query::router(Arc::clone(store))
        .layer(Extension(Scope::All))
        .oneshot(
            http::Request::get(uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("a JSON body"))
}

/// Jaeger's `traceID` of its tests: 1, as 16 bytes.
fn id_one() -> TraceId {
    TraceId::from_hex("1").expect("id")
}

/// `makeTestTrace` of Jaeger's `gateway_test.go`: one SERVER span
/// "foobar", span id 2, status ERROR, no times, no resource attributes.
fn foobar() -> model::Span {
    let mut s = SpanBuilder::new(1, 2, "")
        .name("foobar")
        .kind(SpanKind::Server)
        .build();
    s.trace_id = id_one();
    s.span_id = model::SpanId::from_hex("2").expect("id");
    s.status_code = StatusCode::Error;
    s.start_unix_nano = 0;
    s.end_unix_nano = 0;
    s.resource = Arc::new(model::Resource {
        service_name: String::new(),
        attributes: Vec::new(),
    });
    s
}

/// Meridian's one addition to a resource, `meridian.cluster`, checked and
/// removed (with `attributes` when nothing else is left).
fn without_cluster(mut body: Value, cluster: &str) -> Value {
    for rs in body["result"]["resourceSpans"]
        .as_array_mut()
        .expect("resourceSpans")
    {
        let res = rs["resource"].as_object_mut().expect("resource");
        let attrs = res
            .get_mut("attributes")
            .and_then(Value::as_array_mut)
            .expect("attributes");
        let before = attrs.len();
        attrs.retain(|a| {
            a != &json!({"key": "meridian.cluster", "value": {"stringValue": cluster}})
        });
        assert_eq!(attrs.len(), before - 1, "one meridian.cluster attribute");
        if attrs.is_empty() {
            res.remove("attributes");
        }
    }
    body
}

#[tokio::test]
async fn services_and_operations_match_jaeger() {
    let store = store_with(vec![
        SpanBuilder::new(1, 1, "foo")
            .name("get_users")
            .kind(SpanKind::Server)
            .build(),
    ])
    .await;
    assert_eq!(
        get(&store, "/api/v3/services").await,
        (200, fixture("GetServices.json"))
    );
    assert_eq!(
        get(&store, "/api/v3/operations?service=foo&spanKind=server").await,
        (200, fixture("GetOperations.json"))
    );
    // The snake_case alias, and the empty lists Jaeger UI requires
    // (`z.array`, not optional, in its generated client).
    assert_eq!(
        get(&store, "/api/v3/operations?service=foo&span_kind=server").await,
        (200, fixture("GetOperations.json"))
    );
    assert_eq!(
        get(&store, "/api/v3/operations?service=bar").await,
        (200, json!({"operations": []}))
    );
    // A span without a kind: Jaeger's gateway answers "internal".
    let unkinded = store_with(vec![
        SpanBuilder::new(2, 1, "bar")
            .name("tick")
            .kind(SpanKind::Unspecified)
            .build(),
    ])
    .await;
    assert_eq!(
        get(&unkinded, "/api/v3/operations?service=bar").await,
        (
            200,
            json!({"operations": [{"name": "tick", "spanKind": "internal"}]})
        )
    );
    let empty = store_with(Vec::new()).await;
    assert_eq!(
        get(&empty, "/api/v3/services").await,
        (200, json!({"services": []}))
    );
}

#[tokio::test]
async fn a_trace_by_id_and_by_search_match_jaeger() {
    let store = store_with(vec![foobar()]).await;
    for (uri, name) in [
        ("/api/v3/traces/1".to_owned(), "GetTrace.json"),
        (
            "/api/v3/traces/00000000000000000000000000000001?rawTraces=true".to_owned(),
            "GetTrace.json",
        ),
        (
            "/api/v3/traces/1?startTime=1970-01-01T00:00:00Z&endTime=1970-01-02T00:00:00Z"
                .to_owned(),
            "GetTrace.json",
        ),
        (format!("/api/v3/traces?{WINDOW}"), "FindTraces.json"),
        (
            format!("/api/v3/traces?{WINDOW}&query.rawTraces=true"),
            "FindTraces.json",
        ),
    ] {
        let (status, body) = get(&store, &uri).await;
        assert_eq!(status, 200, "{uri}: {body}");
        assert_eq!(without_cluster(body, "east"), fixture(name), "{uri}");
    }
}

#[tokio::test]
async fn trace_summaries_match_jaeger() {
    // `runGatewayFindTraceSummaries`: root "HTTP GET /" over [1000 s,
    // 1001 s], its child with status ERROR, both of "frontend".
    let mut root = SpanBuilder::new(1, 1, "frontend")
        .name("HTTP GET /")
        .build();
    let mut child = SpanBuilder::new(1, 2, "frontend").name("child").build();
    for s in [&mut root, &mut child] {
        s.trace_id = id_one();
        s.resource = Arc::new(model::Resource {
            service_name: "frontend".into(),
            attributes: Vec::new(),
        });
    }
    root.span_id = model::SpanId::from_hex("1").expect("id");
    child.span_id = model::SpanId::from_hex("2").expect("id");
    child.parent_span_id = Some(root.span_id);
    child.status_code = StatusCode::Error;
    (root.start_unix_nano, root.end_unix_nano) = (1_000_000_000_000, 1_001_000_000_000);
    (child.start_unix_nano, child.end_unix_nano) = (1_000_000_000_100, 1_000_000_000_900);
    let store = store_with(vec![root, child]).await;
    assert_eq!(
        get(&store, &format!("/api/v3/trace-summaries?{WINDOW}")).await,
        (200, fixture("FindTraceSummaries.json"))
    );
    // What Jaeger UI sends (`api/v3/client.ts`, `fetchTraceSummaries`).
    assert_eq!(
        get(
            &store,
            "/api/v3/trace-summaries?query.serviceName=frontend&query.startTimeMin=1970-01-01T00%3A00%3A00.000Z\
             &query.startTimeMax=1970-01-01T01%3A00%3A00.000Z&query.searchDepth=20&query.durationMin=1ms"
        )
        .await,
        (200, fixture("FindTraceSummaries.json"))
    );
    // Nothing found: no summaries (the array kept, as the UI reads it).
    assert_eq!(
        get(
            &store,
            &format!("/api/v3/trace-summaries?{WINDOW}&query.serviceName=nobody")
        )
        .await,
        (200, json!({"summaries": []}))
    );
}

#[tokio::test]
async fn errors_are_jaegers_envelope() {
    let store = store_with(vec![foobar()]).await;
    for uri in [
        "/api/v3/traces/ff".to_owned(),
        format!("/api/v3/traces?{WINDOW}&query.serviceName=nobody"),
    ] {
        assert_eq!(
            get(&store, &uri).await,
            (404, fixture("NotFound.json")),
            "{uri}"
        );
    }
    for (uri, message) in [
        ("/api/v3/traces/xyz".to_owned(), "malformed parameter trace_id"),
        ("/api/v3/traces/1?startTime=yesterday".to_owned(), "malformed parameter startTime"),
        ("/api/v3/traces/1?raw_traces=maybe".to_owned(), "malformed parameter raw_traces"),
        ("/api/v3/traces".to_owned(), "query.startTimeMin and query.startTimeMax are required"),
        (
            "/api/v3/trace-summaries?query.serviceName=a".to_owned(),
            "query.startTimeMin and query.startTimeMax are required",
        ),
        (format!("/api/v3/traces?{WINDOW}&query.durationMin=5"), "malformed parameter query.durationMin"),
        (
            "/api/v3/traces?query.startTimeMin=1970-01-01T00:00:00Z&query.startTimeMax=1970-03-01T00:00:00Z"
                .to_owned(),
            "longer than",
        ),
        ("/api/v3/operations".to_owned(), "service"),
    ] {
        let (status, body) = get(&store, &uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
        assert_eq!(body["error"]["httpCode"], 400, "{uri}");
        let got = body["error"]["message"].as_str().expect("message");
        assert!(got.contains(message), "{uri}: {got}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{uri}: only `error`");
    }
}

/// OTLP/JSON as pdata writes it, field by field, on a span that uses
/// every part of the format.
#[tokio::test]
async fn otlp_json_encodings() {
    use model::{AttrValue, KeyValue};
    let mut s = SpanBuilder::new(9, 3, "api")
        .name("GET /x")
        .kind(SpanKind::Client)
        .parent(1)
        .at_unix(1_700_000_000_123_456_789, 5)
        .attr("s", AttrValue::Str("v".into()))
        .attr("b", AttrValue::Bool(true))
        .attr("i", AttrValue::Int(9_007_199_254_740_993))
        .attr("d", AttrValue::Double(1.5))
        .attr("y", AttrValue::Bytes(vec![1, 2]))
        .event("retry", vec![KeyValue::string("n", "1")])
        .link(8, 4)
        .error("boom")
        .build();
    s.scope_name = "lib".into();
    s.scope_version = "1.0".into();
    s.trace_state = "ot=th:8".into();
    s.flags = 1;
    let store = store_with(vec![s.clone()]).await;
    let (status, body) = get(&store, &format!("/api/v3/traces/{}", s.trace_id.to_hex())).await;
    assert_eq!(status, 200, "{body}");
    let rs = &body["result"]["resourceSpans"][0];
    assert_eq!(
        rs["resource"]["attributes"],
        json!([
            {"key": "service.name", "value": {"stringValue": "api"}},
            {"key": "k8s.cluster.name", "value": {"stringValue": "east"}},
            {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}},
            {"key": "meridian.cluster", "value": {"stringValue": "east"}},
        ])
    );
    assert_eq!(
        rs["scopeSpans"][0]["scope"],
        json!({"name": "lib", "version": "1.0"})
    );
    let span = &rs["scopeSpans"][0]["spans"][0];
    assert_eq!(
        *span,
        json!({
            "traceId": s.trace_id.to_hex(),
            "spanId": s.span_id.to_hex(),
            "parentSpanId": s.parent_span_id.expect("parent").to_hex(),
            "traceState": "ot=th:8",
            "flags": 1,
            "name": "GET /x",
            "kind": 3,
            "startTimeUnixNano": "1700000000123456789",
            "endTimeUnixNano": "1700000000128456789",
            "attributes": [
                {"key": "s", "value": {"stringValue": "v"}},
                {"key": "b", "value": {"boolValue": true}},
                {"key": "i", "value": {"intValue": "9007199254740993"}},
                {"key": "d", "value": {"doubleValue": 1.5}},
                {"key": "y", "value": {"bytesValue": "AQI="}},
            ],
            "events": [{
                "timeUnixNano": "1700000000123456790",
                "name": "retry",
                "attributes": [{"key": "n", "value": {"stringValue": "1"}}],
            }],
            "links": [{
                "traceId": store::testsuite::trace_id(8).to_hex(),
                "spanId": store::testsuite::span_id(4).to_hex(),
                "attributes": [{"key": "link.kind", "value": {"stringValue": "batch"}}],
            }],
            "status": {"code": 2, "message": "boom"},
        })
    );
    assert_eq!(span["traceId"].as_str().map(str::len), Some(32));
    assert_eq!(span["spanId"].as_str().map(str::len), Some(16));
}

#[tokio::test]
async fn transform_reads_otlp_json() {
    let store = store_with(Vec::new()).await;
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "frontend"}}]},
        "scopeSpans": [{"spans": [{"traceId": "00000000000000000000000000000001",
            "spanId": "0000000000000002", "name": "foobar", "kind": 2,
            "startTimeUnixNano": "1000000000000", "endTimeUnixNano": "1001000000000"}]}]}]});
    let resp = query::router(Arc::clone(&store))
        .layer(Extension(Scope::All))
        .oneshot(
            http::Request::post("/api/transform")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
    let out: Value =
        serde_json::from_slice(&resp.into_body().collect().await.expect("body").to_bytes())
            .expect("json");
    // Jaeger's `structuredResponse` of `transformOTLP`.
    assert_eq!(out["total"], 0);
    assert_eq!(out["errors"], Value::Null);
    let span = &out["data"][0]["spans"][0];
    assert_eq!(span["operationName"], "foobar");
    assert_eq!(span["startTime"], 1_000_000_000, "microseconds");
    assert_eq!(span["duration"], 1_000_000, "microseconds");
    assert_eq!(out["data"][0]["processes"]["p1"]["serviceName"], "frontend");

    // Bounded: a body over the limit is refused before it is read whole.
    let big = vec![b' '; query::jaeger_v3::transform::MAX_TRANSFORM_BYTES + 1];
    let resp = query::router(store)
        .layer(Extension(Scope::All))
        .oneshot(
            http::Request::post("/api/transform")
                .body(Body::from(big))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 413);
}
