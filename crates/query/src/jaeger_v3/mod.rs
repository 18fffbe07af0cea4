//! Jaeger's api_v3 over HTTP, as Jaeger serves it in
//! `cmd/jaeger/internal/extension/jaegerquery/internal/apiv3/http_gateway.go`
//! (routes, parameters, 404s) with the messages of jaeger-idl
//! `proto/api_v3/query_service.proto`, so Jaeger UI v2.15+ (services and
//! operations) and v2.19+ (search through trace summaries) read Meridian:
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v3/services` | `{"services":[…]}` |
//! | `GET /api/v3/operations?service=&spanKind=` | `{"operations":[{"name","spanKind"}]}` |
//! | `GET /api/v3/traces/{id}?startTime&endTime&rawTraces` | `{"result":{"resourceSpans":[…]}}` ([`otlp_json`]) |
//! | `GET /api/v3/traces?query.…` | the same, every trace found ([`params`]) |
//! | `GET /api/v3/trace-summaries?query.…` | `{"summaries":[…]}` ([`summary`]) |
//! | `POST /api/transform` | OTLP/JSON → Jaeger v1 JSON ([`transform`]) |
//!
//! Errors are 4xx/5xx in the v3 envelope ([`error`]); a get or a search
//! that finds nothing is Jaeger's 404 `No traces found`. Traces are
//! corrected for clock skew ([`crate::skew`]) unless `rawTraces=true`
//! (summaries always are, as in Jaeger).
//!
//! Every handler takes the caller's [`Scope`] ([`crate::scoped`]): lists
//! and searches answer for its clusters only, a trace shows its in-scope
//! spans (with a warning counting the rest), and a trace with no span in
//! scope is the same 404 as a missing one. Windows and search depth are
//! bounded by [`QueryLimits`]; a trace is cut at `max_trace_spans`.
//!
//! Parsing and mapping are pure ([`params`], [`otlp_json`], [`summary`],
//! [`transform`]); the handlers below only call the store.

pub mod error;
pub mod otlp_json;
pub mod params;
pub mod rfc3339;
pub mod summary;
pub mod transform;

use std::sync::Arc;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, RawQuery, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use model::{Trace, access::Scope};
use serde_json::{Value, json};
use store::SpanStore;

use crate::{jaeger::TRUNCATED, scoped, stitched, window::QueryLimits};
use error::{bad_request, not_found, store_error};

type Store = Arc<dyn SpanStore>;

#[derive(Clone)]
struct Api {
    store: Store,
    limits: QueryLimits,
}

pub fn router(store: Store, limits: QueryLimits) -> Router {
    Router::new()
        .route("/api/v3/services", get(services))
        .route("/api/v3/operations", get(operations))
        .route("/api/v3/traces", get(find_traces))
        .route("/api/v3/traces/{trace_id}", get(get_trace))
        .route("/api/v3/trace-summaries", get(find_summaries))
        .route(
            "/api/transform",
            post(transform_otlp).layer(DefaultBodyLimit::max(transform::MAX_TRANSFORM_BYTES)),
        )
        .with_state(Api { store, limits })
}

async fn services(State(api): State<Api>, Extension(scope): Extension<Scope>) -> Response {
    match api.store.services(&scope).await {
        Ok(services) => Json(json!({ "services": services })).into_response(),
        Err(e) => store_error("services", e),
    }
}

async fn operations(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let (service, kind) = match params::operations_request(&params::parse_pairs(q.as_deref())) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    match api.store.operations(&service, kind, &scope).await {
        Ok(ops) => {
            // Jaeger answers an operation without a kind as "internal";
            // one listed both ways is listed once.
            let mut seen = std::collections::HashSet::new();
            let operations: Vec<Value> = ops
                .into_iter()
                .map(|o| (o.name, o.span_kind.jaeger_name().unwrap_or("internal")))
                .filter(|pair| seen.insert(pair.clone()))
                .map(|(name, kind)| json!({"name": name, "spanKind": kind}))
                .collect();
            Json(json!({ "operations": operations })).into_response()
        }
        Err(e) => store_error("operations", e),
    }
}

/// `traces` as shown: skew-corrected unless `raw` (stored times when the
/// backend keeps no offsets), each with its own warnings.
async fn shown(
    store: &dyn SpanStore,
    traces: Vec<(Trace, Vec<String>)>,
    raw: bool,
    scope: &Scope,
) -> Vec<(Trace, Vec<String>)> {
    let (traces, mut warnings): (Vec<Trace>, Vec<Vec<String>>) = traces.into_iter().unzip();
    let corrected = match stitched::shown_traces(store, traces.clone(), raw, scope).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "no clock offsets; showing stored times");
            traces.into_iter().map(|t| (t, Vec::new())).collect()
        }
    };
    corrected
        .into_iter()
        .zip(warnings.iter_mut())
        .map(|((t, mut w), extra)| {
            w.append(extra);
            (t, w)
        })
        .collect()
}

async fn get_trace(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let req = match params::get_request(&id, &params::parse_pairs(q.as_deref())) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let found = match api
        .store
        .get_trace_capped(req.id, api.limits.max_trace_spans)
        .await
    {
        // A trace with no span in scope is as missing as one never stored.
        Ok(found) => found.and_then(|c| scoped::visible_capped(c, &scope)),
        Err(e) => return store_error("trace by id", e),
    };
    let Some((c, hidden)) = found else {
        return not_found();
    };
    let mut warnings = Vec::new();
    if hidden > 0 {
        warnings.push(scoped::hidden_warning(hidden));
    }
    if c.truncated {
        warnings.push(TRUNCATED.into());
    }
    let shown = shown(
        api.store.as_ref(),
        vec![(c.trace, warnings)],
        req.raw,
        &scope,
    )
    .await;
    Json(otlp_json::wrapped(&shown)).into_response()
}

/// Runs a search for the caller: the traces it may see, each with the
/// count of spans its scope hid; the store's partial-result warnings are
/// logged and returned apart.
async fn search(
    api: &Api,
    scope: &Scope,
    q: Option<&str>,
) -> Result<(Vec<(Trace, Vec<String>)>, Vec<String>, bool), Response> {
    let mut req =
        params::find_request(&params::parse_pairs(q), &api.limits).map_err(bad_request)?;
    // The store applies the scope before its limit.
    req.query.scope = scope.clone();
    let found = api
        .store
        .search(&req.query)
        .await
        .map_err(|e| store_error("search", e))?;
    if !found.warnings.is_empty() {
        tracing::warn!(warnings = ?found.warnings, "v3 search answered with partial results");
    }
    let traces = found
        .traces
        .into_iter()
        .filter_map(|t| scoped::visible(t, scope))
        .map(|(t, hidden)| {
            let w = if hidden > 0 {
                vec![scoped::hidden_warning(hidden)]
            } else {
                Vec::new()
            };
            (t, w)
        })
        .collect();
    Ok((traces, found.warnings, req.raw))
}

async fn find_traces(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let (mut traces, partial, raw) = match search(&api, &scope, q.as_deref()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if traces.is_empty() {
        return not_found();
    }
    // A partial answer says so on the first trace, where Jaeger UI shows
    // a trace's warnings.
    if let Some((_, w)) = traces.first_mut() {
        w.extend(partial);
    }
    let shown = shown(api.store.as_ref(), traces, raw, &scope).await;
    Json(otlp_json::wrapped(&shown)).into_response()
}

async fn find_summaries(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let (traces, _partial, _raw) = match search(&api, &scope, q.as_deref()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    // Summaries are always of the corrected traces, as in Jaeger.
    let shown = shown(api.store.as_ref(), traces, false, &scope).await;
    let summaries: Vec<Value> = shown.iter().map(|(t, _)| summary::summary(t)).collect();
    Json(json!({ "summaries": summaries })).into_response()
}

/// Stateless, but behind the access layer like every query route.
async fn transform_otlp(Extension(_scope): Extension<Scope>, body: Bytes) -> Response {
    match transform::transform(&body) {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let msg = format!("malformed OTLP/JSON: {e}");
            (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"data": null, "total": 0, "limit": 0, "offset": 0,
                            "errors": [{"code": 400, "msg": msg}]})),
            )
                .into_response()
        }
    }
}
