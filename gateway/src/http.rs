//! The `--http` port: query APIs, the admin API, web UI, `/metrics`,
//! `/healthz`, `/readyz`.

use std::sync::Arc;

use axum::{Router, extract::State, http::StatusCode, routing::get};
use prometheus_client::registry::Registry;
use store::SpanStore;

pub fn router(
    store: Arc<dyn SpanStore>,
    registry: Arc<Registry>,
    plane: Arc<control_plane::ControlPlane>,
    admin_token: Option<Arc<str>>,
    limits: query::QueryLimits,
) -> Router {
    Router::new()
        .merge(control_plane::admin::router(plane, admin_token))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(Arc::clone(&store)))
        .merge(telemetry::metrics::router(registry))
        .merge(query::router_with_limits(store, limits))
        .merge(web::router())
}

/// Ready when the store answers. The store's error is logged, not sent.
async fn readyz(State(store): State<Arc<dyn SpanStore>>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "readiness: the store did not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}
