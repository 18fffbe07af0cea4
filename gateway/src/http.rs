//! The `--http` port: query APIs, the admin API, web UI, `/metrics`,
//! `/healthz`, `/readyz`, assembled in one place so that one access layer
//! covers every route.

use std::sync::Arc;

use axum::{Extension, Router, extract::State, http::StatusCode, routing::get};
use control_plane::ControlReader;
use model::access::Scope;
use prometheus_client::registry::Registry;
use store::SpanStore;

/// What the `--http` port serves from.
pub struct HttpParts {
    pub store: Arc<dyn SpanStore>,
    pub registry: Arc<Registry>,
    pub plane: Arc<control_plane::ControlPlane>,
    pub admin_token: Option<Arc<str>>,
    pub limits: query::QueryLimits,
    pub agents: ingest::agents::AgentRegistry,
    pub red: metrics_alerts::RedConfig,
    pub alerts_ui_url: String,
}

pub fn router(parts: HttpParts) -> Router {
    let reader = Arc::clone(&parts.plane) as Arc<dyn ControlReader>;
    Router::new()
        .merge(control_plane::admin::router(parts.plane, parts.admin_token))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(Arc::clone(&parts.store)))
        .merge(telemetry::metrics::router(parts.registry))
        .merge(query::router_with_limits(
            Arc::clone(&parts.store),
            parts.limits,
        ))
        .merge(ingest::agents::api::router(
            parts.agents,
            Arc::clone(&reader),
        ))
        .merge(metrics_alerts::red::api::router(parts.store, parts.red))
        .merge(metrics_alerts::alerts::api::router(
            reader,
            parts.alerts_ui_url,
        ))
        .merge(web::router())
        // The seam for the identity issue: its access layer resolves the
        // caller and inserts the caller's scope here, in place of every
        // cluster.
        .layer(Extension(Scope::All))
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
