//! Jaeger's v1 JSON query API (REFERENCE.md, "Jaeger query API v1 JSON").

pub mod model;
pub mod params;

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use ::model::TraceId;
use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use serde_json::{Value, json};
use store::{SpanStore, StoreError};

use params::TracesRequest;

type Store = Arc<dyn SpanStore>;

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(traces))
        .route("/api/traces/{id}", get(trace_by_id))
        .with_state(store)
}

/// Jaeger's envelope: `{data, total, limit, offset, errors}`.
fn ok<T: Serialize>(data: Vec<T>) -> Response {
    let total = data.len();
    Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    (
        status,
        Json(json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": status.as_u16(), "msg": msg}],
        })),
    )
        .into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, msg)
}

fn store_error(e: StoreError) -> Response {
    tracing::warn!(error = %e, "query failed in the store");
    let status =
        StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.to_string())
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn services(State(store): State<Store>) -> Response {
    match store.services().await {
        Ok(s) => ok(s),
        Err(e) => store_error(e),
    }
}

async fn service_operations(State(store): State<Store>, Path(service): Path<String>) -> Response {
    match store.operations(&service, None).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|o| o.name).collect();
            names.dedup();
            ok(names)
        }
        Err(e) => store_error(e),
    }
}

async fn operations(State(store): State<Store>, RawQuery(q): RawQuery) -> Response {
    let pairs = params::pairs(q.as_deref());
    let Some(service) = pairs
        .iter()
        .find(|(k, v)| k == "service" && !v.is_empty())
        .map(|(_, v)| v.clone())
    else {
        return bad_request("parameter 'service' is required");
    };
    let kind = match params::span_kind(&pairs) {
        Ok(k) => k,
        Err(e) => return bad_request(e),
    };
    match store.operations(&service, kind).await {
        Ok(ops) => ok(ops
            .into_iter()
            .map(|o| json!({"name": o.name, "spanKind": o.span_kind.jaeger_name().unwrap_or("")}))
            .collect::<Vec<Value>>()),
        Err(e) => store_error(e),
    }
}

async fn traces(State(store): State<Store>, RawQuery(q): RawQuery) -> Response {
    let pairs = params::pairs(q.as_deref());
    match params::traces_request(&pairs, now_nanos()) {
        Err(e) => bad_request(e),
        Ok(TracesRequest::Search(query)) => match store.find_traces(&query).await {
            Ok(found) => ok(found.iter().map(model::trace).collect()),
            Err(e) => store_error(e),
        },
        Ok(TracesRequest::ById(ids)) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                match store.get_trace(id).await {
                    Ok(Some(t)) => out.push(model::trace(&t)),
                    Ok(None) => {}
                    Err(e) => return store_error(e),
                }
            }
            ok(out)
        }
    }
}

async fn trace_by_id(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let id = match TraceId::from_hex(&id) {
        Ok(id) => id,
        Err(e) => return bad_request(format!("invalid trace id {id:?}: {e}")),
    };
    match store.get_trace(id).await {
        Ok(Some(t)) => ok(vec![model::trace(&t)]),
        Ok(None) => error(StatusCode::NOT_FOUND, "trace not found"),
        Err(e) => store_error(e),
    }
}
