//! The `--http` port: query APIs, the admin API, web UI, `/metrics`,
//! `/healthz`, `/readyz`, assembled in one place so that one access layer
//! (`control_plane::access`) covers every API route. `/healthz`, `/readyz`
//! and the UI's static assets stay open: probes and the sign-in page need
//! no credential, and they show no data. The `--zipkin-http` port
//! ([`zipkin_router`]) goes through the same layer.

use std::sync::Arc;

use axum::{
    Extension, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use control_plane::{
    ControlReader,
    access::{Access, AccessPolicy},
};
use model::access::Scope;
use prometheus_client::registry::Registry;
use store::SpanStore;

/// What the `--http` port serves from.
#[derive(Debug)]
pub struct HttpParts {
    pub store: Arc<dyn SpanStore>,
    pub registry: Arc<Registry>,
    pub plane: Arc<control_plane::ControlPlane>,
    /// Who may call the API routes.
    pub access: AccessPolicy,
    /// Judges token expiry.
    pub clock: telemetry::clock::SharedClock,
    pub limits: query::QueryLimits,
    pub agents: ingest::agents::AgentRegistry,
    pub red: metrics_alerts::RedConfig,
    pub alerts_ui_url: String,
}

/// The access layer's resolver for one port: the same policy, clock and
/// audit trail on every query port.
fn access(parts: &HttpParts) -> Access {
    let reader = Arc::clone(&parts.plane) as Arc<dyn ControlReader>;
    Access::new(parts.access.clone(), reader, Arc::clone(&parts.clock))
        .with_audit(parts.plane.audit().clone())
}

pub fn router(parts: HttpParts) -> Router {
    let reader = Arc::clone(&parts.plane) as Arc<dyn ControlReader>;
    let access = access(&parts);
    let api = Router::new()
        .merge(control_plane::access::whoami::router())
        .merge(control_plane::admin::router(parts.plane))
        .route("/metrics", get(metrics).with_state(parts.registry))
        .merge(query::router_with_limits(
            Arc::clone(&parts.store),
            parts.limits,
        ))
        .merge(ingest::agents::api::router(
            parts.agents,
            Arc::clone(&reader),
        ))
        .merge(metrics_alerts::red::api::router(
            Arc::clone(&parts.store),
            parts.red,
        ))
        .merge(metrics_alerts::alerts::api::router(
            reader,
            parts.alerts_ui_url,
        ));
    // Every API route resolves its caller and carries the caller's
    // `Principal` and `Scope` (handlers take the scope as a required
    // extractor, so a route outside this layer fails closed).
    Router::new()
        .merge(control_plane::access::layer(api, access))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(parts.store))
        .merge(web::router())
}

/// The `--tempo-http` port: Tempo's query API behind the same access
/// layer as `--http` (its own `Access`, the same policy and audit).
pub fn tempo_router(parts: &HttpParts) -> Router {
    control_plane::access::layer(
        query::tempo::router(Arc::clone(&parts.store), parts.limits),
        access(parts),
    )
}

/// The `--zipkin-http` port: Zipkin's v2 query API (`query::zipkin`),
/// every route behind the same access layer as `--http`'s API routes;
/// `autocompleteKeys` answers `autocomplete_keys` (the indexed tag keys).
pub fn zipkin_router(parts: &HttpParts, autocomplete_keys: Vec<String>) -> Router {
    let api = query::zipkin::router(Arc::clone(&parts.store), parts.limits, autocomplete_keys);
    control_plane::access::layer(api, access(parts))
}

/// `GET /metrics`: every series for a caller whose scope is every
/// cluster; for a narrower scope, only the series labelled with a
/// `cluster` in it (RED metrics, per-cluster counters), nothing
/// process-wide.
async fn metrics(
    State(registry): State<Arc<Registry>>,
    Extension(scope): Extension<Scope>,
) -> impl IntoResponse {
    let text = telemetry::metrics::render(&registry);
    let body = if scope.is_all() {
        text
    } else {
        telemetry::exposition::retain_by_label(&text, "cluster", |c| scope.allows(c))
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
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
