//! Hostile time parameters against the real SPM and RED routes over a real
//! (in-memory) SQLite store: overflowing, negative, zero and too long
//! windows are refused with 400 naming the parameter before any point is
//! computed; store errors reach the client as a code and a fixed message.

use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;
use metrics_alerts::RedConfig;
use serde_json::Value;
use store::{SpanStore, sqlite::SqliteStore, testsuite::fake::FakeStore};
use tower::ServiceExt;

async fn sqlite() -> Arc<dyn SpanStore> {
    Arc::new(
        SqliteStore::open("sqlite::memory:")
            .await
            .expect("open sqlite"),
    )
}

async fn get(store: Arc<dyn SpanStore>, uri: &str) -> (u16, Value) {
    let router = metrics_alerts::red::api::router(store, RedConfig::default())
        .layer(axum::Extension(model::access::Scope::All));
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
        serde_json::from_slice(&bytes).expect("a JSON answer"),
    )
}

const MIN: &str = "-9223372036854775808";
const MAX: &str = "9223372036854775807";

#[tokio::test]
async fn hostile_windows_are_400_naming_the_parameter() {
    let store = sqlite().await;
    let spm = "/api/metrics/calls?service=a";
    let cases: Vec<(String, &str)> = vec![
        // The review's case: wraps `end - lookback` on the old code.
        (format!("{spm}&lookback={MIN}"), "lookback"),
        (format!("{spm}&lookback=0"), "lookback"),
        (format!("{spm}&lookback=-1"), "lookback"),
        (format!("{spm}&endTs={MIN}"), "endTs"),
        (format!("{spm}&endTs={MAX}&lookback={MAX}"), "lookback"),
        (format!("{spm}&endTs={MAX}&ratePer={MAX}"), "ratePer"),
        (format!("{spm}&ratePer=0"), "ratePer"),
        (format!("{spm}&ratePer={MIN}"), "ratePer"),
        (format!("{spm}&step=0"), "step"),
        (format!("{spm}&step={MIN}"), "step"),
        (format!("{spm}&step=1&lookback=86400000"), "step"),
        // Beyond the longest RED retention (400 days by default).
        (
            format!("{spm}&endTs=86400000000&lookback=43200000000&step=86400000"),
            "lookback",
        ),
        (
            "/api/metrics/latencies?service=a&quantile=0.5&lookback=-9223372036854775808".into(),
            "lookback",
        ),
        (format!("/api/v1/metrics/red?from={MIN}&to={MAX}"), "from"),
        (format!("/api/v1/metrics/red?from=0&to={MAX}"), "from"),
        (format!("/api/v1/metrics/red?to={MIN}"), "to"),
        ("/api/v1/metrics/red?from=-1&to=1000".into(), "from"),
        ("/api/v1/metrics/red?from=2000&to=1000".into(), "from"),
        ("/api/v1/metrics/red?from=0&to=60000&step=0".into(), "step"),
        (
            "/api/v1/metrics/red?from=0&to=60000000&step=1".into(),
            "step",
        ),
    ];
    for (uri, param) in &cases {
        let (status, body) = get(Arc::clone(&store), uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(param), "{uri}: {msg}");
    }
}

#[tokio::test]
async fn sane_windows_are_served() {
    let store = sqlite().await;
    for uri in [
        "/api/metrics/calls?service=a&endTs=7200000&lookback=3600000&step=60000&ratePer=600000",
        "/api/metrics/errors?service=a",
        "/api/v1/metrics/red?from=0&to=3600000&step=60000",
        "/api/v1/metrics/red",
    ] {
        let (status, body) = get(Arc::clone(&store), uri).await;
        assert_eq!(status, 200, "{uri}: {body}");
    }
}

#[tokio::test]
async fn store_errors_are_a_code_and_a_generic_message() {
    // FakeStore keeps no records: every scan fails with the backend's
    // "not supported ... derived records" text.
    let store: Arc<dyn SpanStore> = Arc::new(FakeStore::default());
    for uri in [
        "/api/metrics/calls?service=a",
        "/api/v1/metrics/red?from=0&to=3600000",
    ] {
        let (status, body) = get(Arc::clone(&store), uri).await;
        assert_eq!(status, 500, "{uri}: {body}");
        assert_eq!(body["code"], "internal", "{uri}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("derived records") && !text.contains("not supported"),
            "{uri} leaks the store's text: {text}"
        );
    }
}
