//! Jaeger's v1 JSON query API (REFERENCE.md, "Jaeger query API v1 JSON").
//!
//! Errors use Jaeger's envelope, `{"data": null, "errors": [{"code",
//! "msg"}]}`. A store failure is logged and answered with its class's
//! status and a fixed message ([`crate::public_error`]). A trace holding
//! more than [`QueryLimits::max_trace_spans`] spans is answered with the
//! first ones and [`TRUNCATED`] in its `warnings`.
//!
//! `/api/traces?q=<TraceQL>` searches with TraceQL instead of the form's
//! filters ([`traceql_param`]), answered in the same shape.
//!
//! Every handler takes the caller's [`Scope`] (a required extension,
//! [`crate::scoped`]): lists and searches answer for its clusters only, a
//! trace shows its in-scope spans with one warning counting the rest, and
//! a trace with no span in scope is "not found".

pub mod model;
pub mod params;
pub mod traceql_param;

use std::sync::Arc;

use ::model::{TraceId, access::Scope};
use axum::{
    Extension, Json, Router,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use serde_json::{Value, json};
use store::{CappedTrace, SpanStore, StoreError};
use telemetry::clock::unix_nanos;

use crate::{public_error, scoped, window::QueryLimits};
use params::TracesRequest;

type Store = Arc<dyn SpanStore>;

/// The warning a trace carries when only its first spans are shown.
pub const TRUNCATED: &str = "truncated: the trace has more spans than this gateway returns";

#[derive(Clone)]
struct Api {
    store: Store,
    limits: QueryLimits,
}

pub fn router(store: Store, limits: QueryLimits) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(traces))
        .route("/api/traces/{id}", get(trace_by_id))
        .with_state(Api { store, limits })
}

/// Jaeger's envelope: `{data, total, limit, offset, errors}`.
fn ok<T: Serialize>(data: Vec<T>) -> Response {
    let total = data.len();
    Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

/// A partial answer: the data found, HTTP 200, and what is missing in
/// `errors` (one 503 per warning), which Jaeger UI shows above the results.
fn partial<T: Serialize>(data: Vec<T>, warnings: &[String]) -> Response {
    let total = data.len();
    let errors: Vec<Value> = warnings
        .iter()
        .map(|w| json!({"code": StatusCode::SERVICE_UNAVAILABLE.as_u16(), "msg": w}))
        .collect();
    Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}))
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

fn store_error(what: &'static str, e: StoreError) -> Response {
    let p = public_error::store_failure(what, &e);
    error(p.status, p.msg)
}

/// The Jaeger form of a loaded trace, with the count of spans the scope
/// hid and "truncated" when spans were left out.
fn capped(c: &CappedTrace, hidden: usize) -> model::JTrace {
    let mut j = shown(&c.trace, hidden);
    if c.truncated {
        j.warnings
            .get_or_insert_with(Vec::new)
            .push(TRUNCATED.into());
    }
    j
}

/// The Jaeger form of a trace already cut to the scope, carrying
/// [`scoped::hidden_warning`] when spans were hidden.
fn shown(t: &::model::Trace, hidden: usize) -> model::JTrace {
    let mut j = model::trace(t);
    if hidden > 0 {
        j.warnings
            .get_or_insert_with(Vec::new)
            .push(scoped::hidden_warning(hidden));
    }
    j
}

/// Search results cut to the scope. The store returned only traces with a
/// span in scope; one whose spans all left is dropped all the same.
fn shown_traces(traces: Vec<::model::Trace>, scope: &Scope) -> Vec<model::JTrace> {
    traces
        .into_iter()
        .filter_map(|t| scoped::visible(t, scope))
        .map(|(t, hidden)| shown(&t, hidden))
        .collect()
}

async fn services(
    State(Api { store, .. }): State<Api>,
    Extension(scope): Extension<Scope>,
) -> Response {
    match store.services(&scope).await {
        Ok(s) => ok(s),
        Err(e) => store_error("services", e),
    }
}

async fn service_operations(
    State(Api { store, .. }): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(service): Path<String>,
) -> Response {
    match store.operations(&service, None, &scope).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|o| o.name).collect();
            names.dedup();
            ok(names)
        }
        Err(e) => store_error("operations", e),
    }
}

async fn operations(
    State(Api { store, .. }): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
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
    match store.operations(&service, kind, &scope).await {
        Ok(ops) => ok(ops
            .into_iter()
            .map(|o| json!({"name": o.name, "spanKind": o.span_kind.jaeger_name().unwrap_or("")}))
            .collect::<Vec<Value>>()),
        Err(e) => store_error("operations", e),
    }
}

async fn traces(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = params::pairs(q.as_deref());
    match params::traces_request(&pairs, unix_nanos(), &limits) {
        Err(e) => bad_request(e),
        Ok(TracesRequest::Search(mut query)) => {
            // The store applies the scope before its limit.
            query.scope = scope.clone();
            match store.search(&query).await {
                Ok(found) if found.warnings.is_empty() => ok(shown_traces(found.traces, &scope)),
                Ok(found) => {
                    tracing::warn!(warnings = ?found.warnings, "search answered with partial results");
                    partial(shown_traces(found.traces, &scope), &found.warnings)
                }
                Err(e) => store_error("search", e),
            }
        }
        Ok(TracesRequest::TraceQl(s)) => {
            match crate::tempo::search::run(
                store.as_ref(),
                &s.query,
                s.start,
                s.end,
                s.limit,
                &scope,
            )
            .await
            {
                Ok(out) => {
                    let data: Vec<model::JTrace> =
                        out.hits.iter().map(|h| shown(&h.trace, h.hidden)).collect();
                    if out.warnings.is_empty() {
                        ok(data)
                    } else {
                        tracing::warn!(warnings = ?out.warnings, "TraceQL search answered with partial results");
                        partial(data, &out.warnings)
                    }
                }
                Err(e) => store_error("search", e),
            }
        }
        Ok(TracesRequest::ById(ids)) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                match store.get_trace_capped(id, limits.max_trace_spans).await {
                    Ok(Some(t)) => {
                        if let Some((t, hidden)) = scoped::visible_capped(t, &scope) {
                            out.push(capped(&t, hidden));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return store_error("traces by id", e),
                }
            }
            ok(out)
        }
    }
}

async fn trace_by_id(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let id = match TraceId::from_hex(&id) {
        Ok(id) => id,
        Err(e) => return bad_request(format!("invalid trace id {id:?}: {e}")),
    };
    let raw = params::pairs(q.as_deref())
        .iter()
        .any(|(k, v)| k == "raw" && (v == "true" || v == "1"));
    let found = match store.get_trace_capped(id, limits.max_trace_spans).await {
        // A trace with no span in scope is as missing as one never stored.
        Ok(found) => found.and_then(|c| scoped::visible_capped(c, &scope)),
        Err(e) => return store_error("trace by id", e),
    };
    match found {
        Some((c, hidden)) => {
            match crate::stitched::shown_trace(store.as_ref(), c.trace.clone(), raw, &scope).await {
                Ok((shown, mut warnings)) => {
                    if hidden > 0 {
                        warnings.push(scoped::hidden_warning(hidden));
                    }
                    if c.truncated {
                        warnings.push(TRUNCATED.into());
                    }
                    let mut j = model::trace(&shown);
                    if !warnings.is_empty() {
                        j.warnings = Some(warnings);
                    }
                    ok(vec![j])
                }
                // Without offsets (a backend that keeps no records) the
                // stored times are shown.
                Err(e) => {
                    tracing::debug!(error = %e, "no clock offsets; showing stored times");
                    ok(vec![capped(&c, hidden)])
                }
            }
        }
        None => error(StatusCode::NOT_FOUND, "trace not found"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use http_body_util::BodyExt;
    use store::{
        SearchResult,
        testsuite::{SpanBuilder, trace_id},
    };
    use tower::ServiceExt;

    use super::*;
    use store::testsuite::fake::FakeStore;

    async fn get(store: Arc<FakeStore>, uri: &str) -> (StatusCode, Value) {
        let resp = router(store, QueryLimits::default())
            .layer(Extension(Scope::All))
            .oneshot(
                http::Request::get(uri)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn one_trace() -> ::model::Trace {
        ::model::Trace {
            trace_id: trace_id(7),
            spans: vec![SpanBuilder::new(7, 1, "api").build()],
        }
    }

    #[tokio::test]
    async fn a_partial_search_is_200_with_each_warning_in_errors() {
        let store = Arc::new(FakeStore::default());
        store.set_search(Ok(SearchResult {
            traces: vec![one_trace()],
            warnings: vec![
                "shard 1 did not answer, results are partial: store unavailable: refused".into(),
                "shard 0: scan stopped at 10000 traces".into(),
            ],
        }));
        let (status, body) = get(store, "/api/traces?service=api").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 1);
        assert_eq!(
            body["data"][0]["traceID"],
            "5a000000000000000000000000000007"
        );
        assert_eq!(
            body["errors"],
            json!([
                {"code": 503, "msg": "shard 1 did not answer, results are partial: store unavailable: refused"},
                {"code": 503, "msg": "shard 0: scan stopped at 10000 traces"},
            ])
        );
    }

    #[tokio::test]
    async fn a_complete_search_has_null_errors() {
        let store = Arc::new(FakeStore::default());
        store.set_search(Ok(SearchResult {
            traces: vec![one_trace()],
            warnings: Vec::new(),
        }));
        let (status, body) = get(store, "/api/traces?service=api").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["errors"], Value::Null);
        assert_eq!(body["total"], 1);
    }

    #[tokio::test]
    async fn a_search_no_shard_answers_stays_an_error() {
        let store = Arc::new(FakeStore::default());
        store.set_search(Err("shard 0 did not answer; shard 1 did not answer".into()));
        let (status, body) = get(store, "/api/traces?service=api").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["data"], Value::Null);
        assert_eq!(body["errors"][0]["code"], 503);
        // The store's text stays in the log.
        let msg = body["errors"][0]["msg"].as_str().unwrap();
        assert!(!msg.contains("shard 0 did not answer"), "{msg}");
    }

    #[tokio::test]
    async fn a_refused_traceql_query_is_400_in_the_jaeger_envelope() {
        let store = Arc::new(FakeStore::default());
        let (status, body) = get(store, "/api/traces?q=%7B%20%7D%20%7C%20count()%20%3E%201").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["data"], Value::Null);
        assert_eq!(body["errors"][0]["code"], 400);
        assert_eq!(
            body["errors"][0]["msg"],
            "TraceQL: | (pipeline) is not supported by Meridian (at byte 4)"
        );
    }

    #[tokio::test]
    async fn a_traceql_search_answers_jaeger_traces_with_warnings_in_errors() {
        let store = Arc::new(FakeStore::default());
        store.set_search(Ok(SearchResult {
            traces: vec![one_trace()],
            warnings: vec!["shard 0: scan stopped at 10000 traces".into()],
        }));
        let (status, body) = get(
            store,
            "/api/traces?q=%7B%20resource.service.name%3D%22api%22%20%7D",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 1);
        assert_eq!(
            body["data"][0]["traceID"],
            "5a000000000000000000000000000007"
        );
        assert_eq!(body["data"][0]["spans"][0]["operationName"], "op");
        assert_eq!(
            body["errors"],
            json!([{"code": 503, "msg": "shard 0: scan stopped at 10000 traces"}])
        );
    }
}
