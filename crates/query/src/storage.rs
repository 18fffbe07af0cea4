//! `GET /api/v1/storage`: what the store holds, per shard and cluster.
//!
//! ```json
//! {"shards": [{"shard": "0 (db1/meridian)", "totalBytes": 1, "spans": 2,
//!              "clusters": [{"cluster": "east", "spans": 2, "bodyBytes": 1,
//!                            "estimatedBytes": 1}]},
//!             {"shard": "1", "totalBytes": 0, "spans": 0, "clusters": [],
//!              "error": "store unavailable: …"}],
//!  "totalBytes": 1, "spans": 2}
//! ```
//!
//! A shard that cannot answer is listed with its `error` (and counts zero
//! in the totals); the answer is 503 only when the store as a whole fails.
//!
//! A caller whose scope is a set of clusters sees only those clusters'
//! rows, and each shard's `totalBytes` and `spans` become the sums of the
//! rows shown (what the shard holds for others is not told).

use std::sync::Arc;

use axum::{Extension, Json, Router, extract::State, response::IntoResponse, routing::get};
use model::access::Scope;
use serde::Serialize;
use serde_json::json;
use store::{ClusterUsage, ShardUsage, SpanStore};

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageReport {
    pub shards: Vec<Shard>,
    pub total_bytes: u64,
    pub spans: u64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    pub shard: String,
    pub total_bytes: u64,
    pub spans: u64,
    pub clusters: Vec<Cluster>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub cluster: String,
    pub spans: u64,
    pub body_bytes: u64,
    pub estimated_bytes: u64,
}

impl From<ClusterUsage> for Cluster {
    fn from(c: ClusterUsage) -> Self {
        Self {
            cluster: c.cluster,
            spans: c.spans,
            body_bytes: c.body_bytes,
            estimated_bytes: c.estimated_bytes,
        }
    }
}

impl From<ShardUsage> for Shard {
    fn from(s: ShardUsage) -> Self {
        Self {
            shard: s.shard,
            total_bytes: s.total_bytes,
            spans: s.spans,
            clusters: s.clusters.into_iter().map(Cluster::from).collect(),
            error: s.error,
        }
    }
}

impl StorageReport {
    pub fn new(usage: Vec<ShardUsage>) -> Self {
        let shards: Vec<Shard> = usage.into_iter().map(Shard::from).collect();
        Self {
            total_bytes: shards.iter().map(|s| s.total_bytes).sum(),
            spans: shards.iter().map(|s| s.spans).sum(),
            shards,
        }
    }
}

pub fn router(store: Arc<dyn SpanStore>) -> Router {
    Router::new()
        .route("/api/v1/storage", get(storage))
        .with_state(store)
}

/// The usage rows of the clusters in `scope`, shard figures summed over
/// the rows kept.
pub fn scoped_usage(usage: Vec<ShardUsage>, scope: &Scope) -> Vec<ShardUsage> {
    if scope.is_all() {
        return usage;
    }
    usage
        .into_iter()
        .map(|mut s| {
            s.clusters.retain(|c| scope.allows(&c.cluster));
            s.spans = s.clusters.iter().map(|c| c.spans).sum();
            s.total_bytes = s.clusters.iter().map(|c| c.estimated_bytes).sum();
            s
        })
        .collect()
}

async fn storage(
    State(store): State<Arc<dyn SpanStore>>,
    Extension(scope): Extension<Scope>,
) -> axum::response::Response {
    match store.storage_usage().await {
        Ok(usage) => Json(StorageReport::new(scoped_usage(usage, &scope))).into_response(),
        Err(e) => {
            let p = crate::public_error::store_failure("storage usage", &e);
            (p.status, Json(json!({"error": p.msg, "code": p.code}))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use store::testsuite::fake::FakeStore;

    async fn get(store: Arc<FakeStore>) -> (StatusCode, Value) {
        let resp = router(store)
            .layer(Extension(Scope::All))
            .oneshot(
                http::Request::get("/api/v1/storage")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn shards_and_totals_in_camel_case_with_a_failed_shard() {
        let store = Arc::new(FakeStore::default());
        store.set_usage(Ok(vec![
            ShardUsage {
                shard: "0 (db/a)".into(),
                total_bytes: 1_000,
                spans: 30,
                clusters: vec![
                    ClusterUsage {
                        cluster: "east".into(),
                        spans: 10,
                        body_bytes: 100,
                        estimated_bytes: 250,
                    },
                    ClusterUsage {
                        cluster: "west".into(),
                        spans: 20,
                        body_bytes: 300,
                        estimated_bytes: 750,
                    },
                ],
                error: None,
            },
            ShardUsage {
                shard: "1".into(),
                total_bytes: 0,
                spans: 0,
                clusters: Vec::new(),
                error: Some("store unavailable: connection refused".into()),
            },
        ]));
        let (status, body) = get(store).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({
                "shards": [
                    {"shard": "0 (db/a)", "totalBytes": 1000, "spans": 30, "clusters": [
                        {"cluster": "east", "spans": 10, "bodyBytes": 100, "estimatedBytes": 250},
                        {"cluster": "west", "spans": 20, "bodyBytes": 300, "estimatedBytes": 750},
                    ]},
                    {"shard": "1", "totalBytes": 0, "spans": 0, "clusters": [],
                     "error": "store unavailable: connection refused"},
                ],
                "totalBytes": 1000,
                "spans": 30,
            })
        );
    }

    #[tokio::test]
    async fn a_store_that_cannot_answer_is_503() {
        let store = Arc::new(FakeStore::default());
        store.set_usage(Err("down".into()));
        let (status, body) = get(store).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "unavailable");
        assert!(!body["error"].as_str().unwrap().contains("down"), "{body}");
    }
}
