//! RED and SPM metrics answer only for the clusters in the caller's scope:
//! series of clusters a and b stored in a real SQLite store, read through
//! the real metrics router scoped to a, unscoped, and without the access
//! layer (500, fail closed).

use std::sync::Arc;

use axum::{Extension, body::Body};
use http_body_util::BodyExt;
use metrics_alerts::{
    RedConfig,
    red::keys::{self, Resolution},
};
use model::{
    access::Scope,
    red::{Aggregate, SeriesKey},
};
use serde_json::Value;
use store::{Record, SpanStore, sqlite::SqliteStore};
use tower::ServiceExt;

fn series(cluster: &str, service: &str) -> SeriesKey {
    SeriesKey {
        cluster: cluster.into(),
        service: service.into(),
        operation: "op".into(),
        span_kind: "server".into(),
        status_code: "OK".into(),
    }
}

/// One bucket per series at every resolution, at time 0 (the API picks
/// the resolution from the window and the retention).
async fn two_clusters() -> Arc<dyn SpanStore> {
    let store = SqliteStore::open("sqlite::memory:")
        .await
        .expect("open sqlite");
    let mut agg = Aggregate::default();
    agg.observe(5_000_000, false, None);
    let mut records = Vec::new();
    for res in Resolution::ALL {
        for s in [series("a", "web-a"), series("b", "api-b")] {
            records.push(Record {
                kind: res.kind(),
                key: keys::key(&s, 0, "gw1"),
                time_ms: 0,
                value: keys::encode_value(&agg),
                trace: None,
            });
        }
    }
    store.put_records(&records).await.expect("records");
    Arc::new(store)
}

async fn get(store: &Arc<dyn SpanStore>, scope: Option<&Scope>, uri: &str) -> (u16, Value) {
    let mut router = metrics_alerts::red::api::router(Arc::clone(store), RedConfig::default());
    if let Some(scope) = scope {
        router = router.layer(Extension(scope.clone()));
    }
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

const RED: &str = "/api/v1/metrics/red?from=0&to=3600000&step=60000";

fn clusters(body: &Value) -> Vec<String> {
    body["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|s| s["cluster"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn red_series_are_those_of_the_scope() {
    let store = two_clusters().await;
    let a = Scope::only(["a"]);
    let (status, body) = get(&store, Some(&a), RED).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(clusters(&body), ["a"]);
    assert!(!body.to_string().contains("api-b"), "{body}");
    let (_, body) = get(&store, Some(&a), &format!("{RED}&cluster=b")).await;
    assert!(clusters(&body).is_empty(), "{body}");
    let (_, body) = get(&store, Some(&Scope::All), RED).await;
    assert_eq!(clusters(&body), ["a", "b"]);
    let (_, body) = get(&store, Some(&Scope::only(Vec::<String>::new())), RED).await;
    assert!(clusters(&body).is_empty(), "{body}");
}

#[tokio::test]
async fn spm_series_are_those_of_the_scope() {
    let spm = |service: &str| {
        format!(
            "/api/metrics/calls?service={service}&endTs=3600000&lookback=3600000&step=60000&ratePer=600000"
        )
    };
    let store = two_clusters().await;
    let a = Scope::only(["a"]);
    let count = |body: &Value| body["metrics"].as_array().map_or(0, Vec::len);
    let (status, body) = get(&store, Some(&a), &spm("api-b")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body), 0, "{body}");
    let (_, body) = get(&store, Some(&a), &spm("web-a")).await;
    assert_eq!(count(&body), 1, "{body}");
    let (_, body) = get(&store, Some(&Scope::All), &spm("api-b")).await;
    assert_eq!(count(&body), 1, "{body}");
}

#[tokio::test]
async fn a_metrics_route_without_the_access_layer_fails_closed() {
    let store = two_clusters().await;
    for uri in [RED, "/api/metrics/calls?service=web-a"] {
        let (status, body) = get(&store, None, uri).await;
        assert_eq!(status, 500, "{uri}: {body}");
    }
}
