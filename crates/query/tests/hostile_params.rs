//! Hostile query parameters against the real query router over a real
//! (in-memory) SQLite store: every window that overflows, is negative or
//! is too long is refused with 400 and a message naming the parameter;
//! trace-id lists and whole traces are capped; store errors never reach
//! the client as text.

use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;
use query::QueryLimits;
use serde_json::Value;
use store::{
    SpanStore,
    sqlite::SqliteStore,
    testsuite::{SpanBuilder, fake::FakeStore, trace_id},
};
use tower::ServiceExt;

async fn sqlite() -> Arc<dyn SpanStore> {
    Arc::new(
        SqliteStore::open("sqlite::memory:")
            .await
            .expect("open sqlite"),
    )
}

async fn get_with(store: Arc<dyn SpanStore>, limits: QueryLimits, uri: &str) -> (u16, Value) {
    let resp = query::router_with_limits(store, limits)
        .layer(axum::Extension(model::access::Scope::All))
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

async fn get(store: Arc<dyn SpanStore>, uri: &str) -> (u16, Value) {
    get_with(store, QueryLimits::default(), uri).await
}

/// The message of a refusal, in either error shape the API uses.
fn message(body: &Value) -> String {
    body["errors"][0]["msg"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn overflowing_negative_and_long_windows_are_400_naming_the_parameter() {
    let store = sqlite().await;
    for (uri, param) in [
        // Jaeger search: µs times that overflow ns, windows past 7 days.
        ("/api/traces?service=a&end=18446744073709551615", "end"),
        ("/api/traces?service=a&start=18446744073709551615", "start"),
        ("/api/traces?service=a&start=0", "start"),
        ("/api/traces?service=a&lookback=2562047h", "lookback"),
        ("/api/traces?service=a&lookback=8d", "lookback"),
        (
            "/api/traces?service=a&lookback=213503982334601d",
            "lookback",
        ),
        // Dependencies and graph (ms).
        (
            "/api/dependencies?lookback=-9223372036854775808",
            "lookback",
        ),
        (
            "/api/dependencies?endTs=0&lookback=999999999999",
            "lookback",
        ),
        (
            "/api/dependencies?endTs=-9223372036854775808&lookback=1",
            "endTs",
        ),
        (
            "/api/dependencies?endTs=9223372036854775807&lookback=9223372036854775807",
            "lookback",
        ),
        ("/api/v1/graph?endTs=-1", "endTs"),
        ("/api/v1/graph?lookback=0", "lookback"),
        // Explain: the selection's window as a search's, and the baseline's.
        ("/api/v1/explain?service=a&end=18446744073709551615", "end"),
        ("/api/v1/explain?service=a&lookback=8d", "lookback"),
        (
            "/api/v1/explain?service=a&baselineStart=18446744073709551615",
            "baselineStart",
        ),
        (
            "/api/v1/explain?service=a&baselineStart=0&baselineEnd=1700000000000000",
            "baselineStart",
        ),
        ("/api/v1/explain?service=a&limit=-1", "limit"),
        ("/api/v1/explain?q=%7B&service=a", "q"),
    ] {
        let (status, body) = get(Arc::clone(&store), uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
        let msg = message(&body);
        assert!(msg.contains(param), "{uri}: {msg}");
    }
}

#[tokio::test]
async fn windows_within_the_limit_are_served() {
    let store = sqlite().await;
    for uri in [
        "/api/traces?service=a&lookback=7d",
        "/api/traces?service=a&start=1000&end=2000",
        "/api/dependencies?endTs=604800000&lookback=604800000",
    ] {
        let (status, body) = get(Arc::clone(&store), uri).await;
        assert_eq!(status, 200, "{uri}: {body}");
    }
}

#[tokio::test]
async fn the_window_follows_the_configured_limit() {
    let store = sqlite().await;
    let limits = QueryLimits {
        max_window: std::time::Duration::from_secs(3_600),
        ..QueryLimits::default()
    };
    let (status, body) = get_with(
        Arc::clone(&store),
        limits,
        "/api/traces?service=a&lookback=2h",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get_with(store, limits, "/api/dependencies?lookback=3600001").await;
    assert_eq!(status, 400, "{body}");
}

fn trace_ids(n: usize) -> String {
    (1..=n)
        .map(|i| format!("traceID={i:x}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn more_than_1000_trace_ids_are_400() {
    let store = sqlite().await;
    let (status, body) = get(
        Arc::clone(&store),
        &format!("/api/traces?{}", trace_ids(1_001)),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("traceID"), "{body}");
    let (status, body) = get(store, &format!("/api/traces?{}", trace_ids(1_000))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_trace_over_the_span_cap_is_truncated_and_says_so() {
    let store = sqlite().await;
    let spans: Vec<_> = (1..=8u64)
        .map(|i| SpanBuilder::new(77, i, "api").at(i, 1).build())
        .collect();
    store.write(&spans).await.expect("write");
    let limits = QueryLimits {
        max_trace_spans: 5,
        ..QueryLimits::default()
    };
    let hex = trace_id(77).to_hex();
    for uri in [
        format!("/api/traces/{hex}"),
        format!("/api/traces/{hex}?raw=true"),
        format!("/api/traces?traceID={hex}"),
    ] {
        let (status, body) = get_with(Arc::clone(&store), limits, &uri).await;
        assert_eq!(status, 200, "{uri}: {body}");
        let trace = &body["data"][0];
        assert_eq!(trace["spans"].as_array().map(Vec::len), Some(5), "{uri}");
        let warnings = trace["warnings"].as_array().cloned().unwrap_or_default();
        assert!(
            warnings
                .iter()
                .any(|w| w.as_str().is_some_and(|w| w.contains("truncated"))),
            "{uri}: {trace}"
        );
    }
    // Under the cap: whole, no warning.
    let (_, body) = get(Arc::clone(&store), &format!("/api/traces/{hex}")).await;
    assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(8));
    assert_eq!(body["data"][0]["warnings"], Value::Null);
    let (_, body) = get_with(store, limits, &format!("/api/v1/traces/{hex}/summary")).await;
    assert_eq!(body["truncated"], true, "{body}");
}

#[tokio::test]
async fn the_default_span_cap_is_50000() {
    assert_eq!(QueryLimits::default().max_trace_spans, 50_000);
    assert_eq!(QueryLimits::default().max_trace_ids, 1_000);
    assert_eq!(
        QueryLimits::default().max_window,
        std::time::Duration::from_secs(7 * 86_400)
    );
}

#[tokio::test]
async fn store_errors_reach_the_client_as_a_code_and_a_generic_message() {
    let secret = "connection to 10.9.8.7:5432 refused for user meridian password=hunter2";
    let fake = Arc::new(FakeStore::default());
    fake.set_search(Err(secret.into()));
    fake.set_usage(Err(secret.into()));
    let store: Arc<dyn SpanStore> = fake;
    for uri in [
        "/api/traces?service=a",
        "/api/v1/storage",
        // FakeStore keeps no records: the scan fails with "not supported".
        "/api/dependencies",
        "/api/v1/graph",
        "/api/v1/clusters",
        "/api/v1/explain?service=a",
    ] {
        let (status, body) = get(Arc::clone(&store), uri).await;
        assert!(status == 503 || status == 500, "{uri}: {status} {body}");
        let text = body.to_string();
        for leaked in ["10.9.8.7", "hunter2", "not supported", "derived records"] {
            assert!(!text.contains(leaked), "{uri} leaks {leaked:?}: {text}");
        }
        assert!(!message(&body).is_empty(), "{uri}: {body}");
    }
    let (status, body) = get(Arc::clone(&store), "/api/traces?service=a").await;
    assert_eq!(status, 503);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["code"], 503);
}
