//! "Why is it slow?": `GET /api/v1/explain` compares a selection of
//! traces with a baseline and says what the selection has in common that
//! the baseline does not (README.md, "Explain"; ARCHITECTURE.md,
//! "Explain").
//!
//! - [`params`]: the request (selection, baseline, window, limit).
//! - [`run`]: reads both sides, bounded (at most `limit` traces each,
//!   sampled uniformly, until [`DEADLINE`]), cut to the caller's scope and
//!   skew-corrected.
//! - [`analyze`] (pure): dimensions ([`facts`]) scored by a smoothed
//!   log-odds ([`score`]) with head sampling's adjusted counts
//!   ([`weight`]); latency attribution on the critical path
//!   ([`critical`]).
//!
//! The answer, by field: `selection` and `baseline` (`traces`, `spans`
//! read, `adjustedTraces`, `meanDurationMs`, `candidates`, `sampled`);
//! `dimensions` (`key`, `value`, `selectionShare`, `baselineShare`,
//! `score`, `exampleTraceIDs`) ranked by score; `latency` (`service`,
//! `cluster`, `selectionSelfMs`, `baselineSelfMs`, `deltaMs`) and `gaps`
//! (`fromCluster`, `toCluster`, `selectionMs`, `baselineMs`, `deltaMs`)
//! ranked by delta; `skippedKeys`, `excludedKeys`, `significantScore`,
//! `limit`, `partial`, `warnings`.

pub mod analyze;
pub mod critical;
pub mod facts;
pub mod params;
pub mod run;
pub mod score;
#[cfg(test)]
mod tests;
pub mod weight;

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Json, Router,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use model::access::Scope;
use serde_json::json;
use store::SpanStore;
use telemetry::clock::unix_nanos;

use crate::{public_error, window::QueryLimits};

pub use analyze::Explanation;
pub use run::Answer;

/// How long one explanation may read the store.
pub const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Api {
    store: Arc<dyn SpanStore>,
    limits: QueryLimits,
}

pub fn router(store: Arc<dyn SpanStore>, limits: QueryLimits) -> Router {
    Router::new()
        .route("/api/v1/explain", get(explain))
        .with_state(Api { store, limits })
}

async fn explain(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let req = match params::request(q.as_deref(), unix_nanos(), &limits) {
        Ok(r) => r,
        Err(msg) => return (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response(),
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    match run::run(store.as_ref(), &req, &scope, deadline).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => {
            let p = public_error::store_failure("explain", &e);
            (p.status, Json(json!({"error": p.msg, "code": p.code}))).into_response()
        }
    }
}
