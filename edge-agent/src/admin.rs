//! The admin endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`.

use std::sync::Arc;

use axum::{Router, routing::get};
use prometheus_client::registry::Registry;

pub fn router(registry: Arc<Registry>) -> Router {
    telemetry::metrics::router(registry)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
}
