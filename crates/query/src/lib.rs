//! Query APIs served on `--http`.
//!
//! - [`jaeger`]: Jaeger's v1 JSON API (`/api/services`, `/api/operations`,
//!   `/api/services/{s}/operations`, `/api/traces`, `/api/traces/{id}`), so
//!   Jaeger UI and Grafana's Jaeger data source work unchanged.
//!   A trace by id is corrected for clock skew ([`skew`]) unless
//!   `?raw=true`; each process carries the `meridian.cluster` tag.
//! - [`jaeger_v3`]: Jaeger's api_v3 over HTTP (`/api/v3/services`,
//!   `/operations`, `/traces`, `/traces/{id}`, `/trace-summaries`) in
//!   OTLP/JSON, and `POST /api/transform`, for Jaeger UI v2.15+.
//! - [`stitched`]: what stitching adds: `/api/dependencies`, `/api/v1/graph`,
//!   `/api/v1/clusters`, `/api/v1/traces/{id}/summary` and `/links`.
//! - [`explain`]: `/api/v1/explain`, what a selection of traces has in
//!   common that a baseline does not, and where its extra time goes.
//! - [`storage`]: `/api/v1/storage`, storage used per shard and cluster.
//! - [`zipkin`]: Zipkin's v2 query API (`/api/v2/…`, and `/zipkin/api/v2/…`
//!   for Lens), served apart on the gateway's `--zipkin-http` port
//!   ([`zipkin::router`]).
//!
//! Every handler takes the caller's `Extension<Scope>` ([`scoped`]): a
//! route assembled without the access layer answers 500, never unscoped
//! data.
//!
//! Every time parameter is checked ([`window`]) against [`QueryLimits`];
//! store failures reach clients only as a code and a fixed message
//! ([`public_error`]).
//!
//! Query parsing and the OTLP → Jaeger mapping are pure functions; the
//! handlers only call the store.
//!
//! Must not know: ingest, the control plane, SQL (only the `SpanStore`
//! trait) or how the derived records are made (it reads the formats
//! `stitch` defines).

pub mod duration;
pub mod explain;
pub mod jaeger;
pub mod jaeger_v3;
pub mod public_error;
pub mod scoped;
pub mod skew;
pub mod stitched;
pub mod storage;
pub mod tempo;
pub mod traceql;
pub mod window;
pub mod zipkin;

use std::sync::Arc;

use axum::Router;
use store::SpanStore;

pub use window::QueryLimits;

/// Every query route, with the store as state, under the default limits.
pub fn router(store: Arc<dyn SpanStore>) -> Router {
    router_with_limits(store, QueryLimits::default())
}

/// Every query route, with the store as state, under `limits`.
pub fn router_with_limits(store: Arc<dyn SpanStore>, limits: QueryLimits) -> Router {
    jaeger::router(Arc::clone(&store), limits)
        .merge(jaeger_v3::router(Arc::clone(&store), limits))
        .merge(stitched::router(Arc::clone(&store), limits))
        .merge(explain::router(Arc::clone(&store), limits))
        .merge(storage::router(store))
}
