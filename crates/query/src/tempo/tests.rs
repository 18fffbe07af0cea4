//! The Tempo API over a real (SQLite) store. Shapes follow Tempo's own
//! documented answers (`docs/sources/tempo/api_docs/_index.md`: the
//! TraceQL search example, search tags v2, tag values v2, echo,
//! buildinfo) and its protobuf (`pkg/tempopb/tempo.proto`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::{Extension, body::Body};
use base64::Engine as _;
use http_body_util::BodyExt;
use model::{AttrValue, SpanKind, Trace, access::Scope};
use prost::Message as _;
use serde_json::{Value, json};
use store::{
    SpanStore, StoreOptions,
    testsuite::{MS, SpanBuilder, T0},
};
use tower::ServiceExt;

use super::{otlp::TraceByIdResponse, router};
use crate::window::QueryLimits;

const START_S: u64 = T0 / 1_000_000_000 - 60;
const END_S: u64 = T0 / 1_000_000_000 + 3_600;

/// The three-cluster trace of the federation tests: web (a) → api (b) →
/// db (c, error), and a second trace entirely in c.
fn traces() -> Vec<Trace> {
    let one = Trace {
        trace_id: store::testsuite::trace_id(1),
        spans: vec![
            SpanBuilder::new(1, 1, "web")
                .cluster("a")
                .name("GET /")
                .at(0, 100)
                .build(),
            SpanBuilder::new(1, 2, "api")
                .cluster("b")
                .name("checkout")
                .kind(SpanKind::Client)
                .parent(1)
                .at(10, 80)
                .attr("http.method", AttrValue::Str("POST".into()))
                .build(),
            SpanBuilder::new(1, 3, "db")
                .cluster("c")
                .name("query")
                .parent(2)
                .at(20, 30)
                .error("timeout")
                .build(),
        ],
    };
    let two = Trace {
        trace_id: store::testsuite::trace_id(2),
        spans: vec![
            SpanBuilder::new(2, 1, "db")
                .cluster("c")
                .name("vacuum")
                .at(5, 1)
                .build(),
        ],
    };
    vec![one, two]
}

async fn api() -> Arc<dyn SpanStore> {
    let store = store::open(&["sqlite::memory:".to_owned()], &StoreOptions::default())
        .await
        .unwrap();
    let spans: Vec<_> = traces().into_iter().flat_map(|t| t.spans).collect();
    store.write(&spans).await.unwrap();
    store
}

async fn call(
    store: &Arc<dyn SpanStore>,
    scope: Scope,
    uri: &str,
    accept: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut req = http::Request::get(uri);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = router(Arc::clone(store), QueryLimits::default())
        .layer(Extension(scope))
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn get(store: &Arc<dyn SpanStore>, scope: Scope, uri: &str) -> (u16, Value) {
    let (status, body) = call(store, scope, uri, None).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, v)
}

fn search_uri(q: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
    format!("/api/search?q={q}&start={START_S}&end={END_S}")
}

#[tokio::test]
async fn a_traceql_search_answers_in_tempos_shape() {
    let store = api().await;
    let (status, body) = get(&store, Scope::All, &search_uri("{ status = error }")).await;
    assert_eq!(status, 200, "{body}");
    let traces = body["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{body}");
    let t = &traces[0];
    // Tempo's hex: no leading zeros on trace ids (util.TraceIDToHexString).
    let full = store::testsuite::trace_id(1).to_hex();
    assert_eq!(t["traceID"], json!(full.trim_start_matches('0')));
    assert_eq!(t["rootServiceName"], "web");
    assert_eq!(t["rootTraceName"], "GET /");
    // uint64 as a JSON string, uint32 as a number (jsonpb).
    assert_eq!(t["startTimeUnixNano"], json!(T0.to_string()));
    assert_eq!(t["durationMs"], json!(100));
    let set = &t["spanSets"][0];
    assert_eq!(set, &t["spanSet"], "spanSet mirrors spanSets[0]");
    assert_eq!(set["matched"], 1);
    let span = &set["spans"][0];
    assert_eq!(span["spanID"], json!(store::testsuite::span_id(3).to_hex()));
    assert_eq!(span["spanID"].as_str().unwrap().len(), 16);
    assert_eq!(span["name"], "query");
    assert_eq!(span["startTimeUnixNano"], json!((T0 + 20 * MS).to_string()));
    assert_eq!(span["durationNanos"], json!((30 * MS).to_string()));
    assert_eq!(
        span["attributes"],
        json!([{"key": "status", "value": {"stringValue": "error"}}])
    );
    assert_eq!(
        t["serviceStats"]["db"],
        json!({"spanCount": 1, "errorCount": 1})
    );
    assert_eq!(t["serviceStats"]["web"], json!({"spanCount": 1}));
    assert!(body["metrics"]["inspectedTraces"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn structural_queries_cross_clusters_and_respect_the_scope() {
    let store = api().await;
    let q = r#"{ cluster = "a" } >> { cluster = "c" && status = error }"#;
    let (_, body) = get(&store, Scope::All, &search_uri(q)).await;
    assert_eq!(body["traces"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = get(
        &store,
        Scope::All,
        &search_uri(r#"{ cluster = "c" } >> { cluster = "a" }"#),
    )
    .await;
    assert_eq!(body["traces"], json!([]));
    // A caller who sees a and b: the downstream error in c is not theirs.
    let ab = Scope::only(["a", "b"]);
    let (_, body) = get(&store, ab.clone(), &search_uri(q)).await;
    assert_eq!(body["traces"], json!([]), "{body}");
    let (_, body) = get(&store, ab.clone(), &search_uri("{ }")).await;
    let ids: Vec<&Value> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["traceID"])
        .collect();
    assert_eq!(ids.len(), 1, "the trace only in c is hidden: {body}");
    let (_, body) = get(
        &store,
        ab.clone(),
        &search_uri(r#"{ cluster = "a" } > { }"#),
    )
    .await;
    assert_eq!(body["traces"][0]["spanSet"]["matched"], 1);
    // By id: the trace only in c is not found; the other is partial.
    let two = store::testsuite::trace_id(2).to_hex();
    let (status, body) = get(&store, ab.clone(), &format!("/api/traces/{two}")).await;
    assert_eq!((status, body), (404, json!("trace not found")));
    let one = store::testsuite::trace_id(1).to_hex();
    let (status, body) = get(&store, ab, &format!("/api/v2/traces/{one}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "PARTIAL");
    let spans: usize = body["trace"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(spans, 2);
}

#[tokio::test]
async fn a_trace_by_id_is_otlp_json_or_protobuf() {
    let store = api().await;
    let id = store::testsuite::trace_id(1);
    // Tempo pads short ids: the trimmed hex of a search answer works.
    let short = id.to_hex().trim_start_matches('0').to_owned();
    let (status, body) = get(&store, Scope::All, &format!("/api/traces/{short}")).await;
    assert_eq!(status, 200, "{body}");
    let batches = body["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    let web = &batches[0];
    assert_eq!(
        web["resource"]["attributes"][0],
        json!({"key": "service.name", "value": {"stringValue": "web"}})
    );
    let span = &web["scopeSpans"][0]["spans"][0];
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(span["traceId"], json!(b64.encode(id.as_bytes())));
    assert_eq!(span["kind"], "SPAN_KIND_SERVER");
    assert_eq!(span["startTimeUnixNano"], json!(T0.to_string()));
    assert!(
        span.get("parentSpanId").is_none(),
        "zero values are left out"
    );
    let db = &batches[2]["scopeSpans"][0]["spans"][0];
    assert_eq!(
        db["status"],
        json!({"code": "STATUS_CODE_ERROR", "message": "timeout"})
    );

    let (status, bytes) = call(
        &store,
        Scope::All,
        &format!("/api/v2/traces/{short}"),
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(status, 200);
    let resp = TraceByIdResponse::decode(bytes.as_slice()).unwrap();
    assert_eq!(resp.status, 0, "COMPLETE");
    let trace = resp.trace.unwrap();
    let spans: Vec<_> = trace
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    assert_eq!(spans.len(), 3);
    assert_eq!(
        spans[2].parent_span_id,
        store::testsuite::span_id(2).as_bytes().to_vec()
    );
    let (status, bytes) = call(
        &store,
        Scope::All,
        &format!("/api/traces/{short}"),
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(status, 200);
    let t = super::otlp::TempoTrace::decode(bytes.as_slice()).unwrap();
    assert_eq!(t.resource_spans.len(), 3);

    assert_eq!(get(&store, Scope::All, "/api/traces/zz").await.0, 400);
    assert_eq!(
        get(
            &store,
            Scope::All,
            &format!("/api/traces/{}", "1".repeat(33))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        get(&store, Scope::All, "/api/v2/traces/abc").await,
        (404, json!("trace not found"))
    );
}

#[tokio::test]
async fn tags_and_values_answer_in_tempos_shapes() {
    let store = api().await;
    let w = format!("start={START_S}&end={END_S}");
    let (status, body) = get(&store, Scope::All, &format!("/api/v2/search/tags?{w}")).await;
    assert_eq!(status, 200);
    let scopes = body["scopes"].as_array().unwrap();
    let names: Vec<&str> = scopes.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["resource", "span", "intrinsic"]);
    let resource = scopes[0]["tags"].as_array().unwrap();
    assert!(
        resource.contains(&json!("service.name")) && resource.contains(&json!("k8s.cluster.name"))
    );
    assert_eq!(scopes[1]["tags"], json!(["http.method"]));
    assert!(
        scopes[2]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("rootServiceName"))
    );
    let (_, body) = get(
        &store,
        Scope::All,
        &format!("/api/search/tags?scope=span&{w}"),
    )
    .await;
    assert_eq!(body["tagNames"], json!(["http.method"]));

    let (_, body) = get(
        &store,
        Scope::All,
        &format!("/api/v2/search/tag/resource.service.name/values?{w}"),
    )
    .await;
    assert_eq!(
        body["tagValues"],
        json!([{"type": "string", "value": "api"}, {"type": "string", "value": "db"}, {"type": "string", "value": "web"}])
    );
    let (_, body) = get(
        &store,
        Scope::only(["a"]),
        &format!("/api/search/tag/service.name/values?{w}"),
    )
    .await;
    assert_eq!(body["tagValues"], json!(["web"]));
    let (_, body) = get(
        &store,
        Scope::All,
        &format!("/api/v2/search/tag/status/values?{w}"),
    )
    .await;
    assert_eq!(
        body["tagValues"][0],
        json!({"type": "keyword", "value": "error"})
    );
    let q: String =
        form_urlencoded::byte_serialize(br#"{ resource.service.name = "api" }"#).collect();
    let (_, body) = get(
        &store,
        Scope::All,
        &format!("/api/v2/search/tag/span.http.method/values?q={q}&{w}"),
    )
    .await;
    assert_eq!(
        body["tagValues"],
        json!([{"type": "string", "value": "POST"}])
    );
    let (_, body) = get(
        &store,
        Scope::All,
        &format!("/api/v2/search/tag/name/values?{w}"),
    )
    .await;
    assert_eq!(body["tagValues"].as_array().unwrap().len(), 4);
    assert_eq!(
        get(&store, Scope::All, "/api/v2/search/tags?scope=nope")
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn echo_buildinfo_and_the_legacy_tag_search() {
    let store = api().await;
    assert_eq!(
        get(&store, Scope::All, "/api/echo").await,
        (200, json!("echo"))
    );
    let (_, info) = get(&store, Scope::All, "/api/status/buildinfo").await;
    for k in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(info[k].is_string(), "{k}: {info}");
    }
    let (status, body) = get(
        &store,
        Scope::All,
        &format!("/api/search?tags=service.name%3Ddb&minDuration=20ms&start={START_S}&end={END_S}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Trace 2 (1 ms) is shorter than minDuration.
    assert_eq!(body["traces"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = get(
        &store,
        Scope::All,
        &format!("/api/search?tags=http.method%3DPOST&limit=5&start={START_S}&end={END_S}"),
    )
    .await;
    assert_eq!(body["traces"][0]["rootServiceName"], "web");
}

#[tokio::test]
async fn bad_requests_are_400_with_a_message() {
    let store = api().await;
    let cases = [
        (
            search_uri("{ } | count() > 1"),
            "| (pipeline) is not supported",
        ),
        (search_uri("{ name = }"), "expected a value"),
        (
            format!("/api/search?q=%7B%7D&tags=a%3Db&start={START_S}&end={END_S}"),
            "can't specify tags and q",
        ),
        (
            format!("/api/search?limit=0&start={START_S}&end={END_S}"),
            "invalid limit",
        ),
        (
            format!("/api/search?spss=x&start={START_S}&end={END_S}"),
            "invalid spss",
        ),
        (
            format!("/api/search?start={END_S}&end={START_S}"),
            "start must be before end",
        ),
        (
            "/api/search?start=1&end=5000000000".to_owned(),
            "invalid end",
        ),
        ("/api/search?start=1&end=4000000".to_owned(), "longer than"),
        (
            format!("/api/search?minDuration=fast&start={START_S}&end={END_S}"),
            "invalid minDuration",
        ),
        (
            format!("/api/search?tags=a%7D%3Db&start={START_S}&end={END_S}"),
            "invalid tags",
        ),
    ];
    for (uri, want) in cases {
        let (status, body) = get(&store, Scope::All, &uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
        assert!(body.as_str().unwrap().contains(want), "{uri}: {body}");
    }
}
