//! Tempo's HTTP query API, the part Grafana's Tempo data source calls
//! (Tempo `pkg/api/http.go`, `pkg/tempopb/tempo.proto`, docs
//! `api_docs/_index.md`), served on `--tempo-http`:
//!
//! - `/api/echo`, `/api/status/buildinfo`;
//! - `/api/search` with TraceQL `q=` ([`crate::traceql`]) or the legacy
//!   `tags=` (logfmt), `minDuration`, `maxDuration`, `limit`, `spss`,
//!   `start`, `end` (unix seconds; default the last hour);
//! - `/api/search/tags`, `/api/v2/search/tags`, `/api/search/tag/{t}/values`,
//!   `/api/v2/search/tag/{t}/values`: names and values seen in the newest
//!   [`tags::SAMPLE_TRACES`] traces of the window (service names from the
//!   store's index);
//! - `/api/traces/{id}` (`{"batches": …}`) and `/api/v2/traces/{id}`
//!   (`{"trace": …}`), protobuf with `Accept: application/protobuf`.
//!
//! Every handler takes the caller's `Extension<Scope>`: searches evaluate
//! on scope-cut traces and a trace with nothing in scope is 404. Errors are
//! plain text with a 4xx status, as Tempo answers them.

pub mod otlp;
pub mod search;
mod shape;
mod tags;

use std::sync::Arc;

use axum::{
    Extension, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use model::{TraceId, access::Scope};
use serde_json::json;
use store::{SpanStore, StoreError};
use telemetry::clock::unix_nanos;

use crate::{jaeger::params::pairs, public_error, scoped, traceql, window::QueryLimits};

type Store = Arc<dyn SpanStore>;

/// The Tempo API level served (Grafana reads it to choose features).
pub const TEMPO_API_VERSION: &str = "2.8.0";
/// Default search window when `start`/`end` are absent.
pub const DEFAULT_WINDOW_SECS: u64 = 3_600;
/// Default and largest spans shown per spanset (`spss`), as Tempo's.
pub const DEFAULT_SPSS: usize = 3;
pub const MAX_SPSS: usize = 100;
/// Default results (`limit`), as Tempo's.
pub const DEFAULT_LIMIT: usize = 20;

#[derive(Clone)]
struct Api {
    store: Store,
    limits: QueryLimits,
}

pub fn router(store: Store, limits: QueryLimits) -> Router {
    Router::new()
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/search", get(search_handler))
        .route("/api/search/tags", get(tags::names_v1))
        .route("/api/v2/search/tags", get(tags::names_v2))
        .route("/api/search/tag/{tag}/values", get(tags::values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tags::values_v2))
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .with_state(Api { store, limits })
}

fn bad_request(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, msg.into()).into_response()
}

fn store_error(what: &'static str, e: &StoreError) -> Response {
    let p = public_error::store_failure(what, e);
    (p.status, p.msg).into_response()
}

async fn buildinfo() -> Response {
    axum::Json(json!({
        "version": TEMPO_API_VERSION,
        "revision": concat!("meridian-", env!("CARGO_PKG_VERSION")),
        "branch": "meridian",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

/// A window in unix nanoseconds from `start`/`end` (unix seconds).
fn window(p: &[(String, String)], limits: &QueryLimits) -> Result<(u64, u64), String> {
    let secs = |name: &str| -> Result<Option<u64>, String> {
        match p.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) if v.is_empty() => Ok(None),
            Some((_, v)) => v
                .parse::<u32>()
                .map(|s| Some(u64::from(s)))
                .map_err(|e| format!("invalid {name}: {e}")),
        }
    };
    let now_s = unix_nanos() / 1_000_000_000;
    let (start, end) = match (secs("start")?, secs("end")?) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, now_s),
        (None, Some(e)) => (e.saturating_sub(DEFAULT_WINDOW_SECS), e),
        (None, None) => (now_s.saturating_sub(DEFAULT_WINDOW_SECS), now_s),
    };
    if end <= start {
        return Err(format!(
            "http parameter start must be before end. received start={start} end={end}"
        ));
    }
    let max = limits.max_window.as_secs();
    if end - start > max {
        return Err(format!(
            "the window from start to end is longer than this gateway's {max} s"
        ));
    }
    // Seconds to nanoseconds; `end` covers its whole second.
    let nanos = |s: u64| s.saturating_mul(1_000_000_000);
    Ok((nanos(start), nanos(end).saturating_add(999_999_999)))
}

fn number(p: &[(String, String)], name: &str, default: usize, max: usize) -> Result<usize, String> {
    match p.iter().find(|(k, _)| k == name) {
        None => Ok(default),
        Some((_, v)) => match v.parse::<usize>() {
            Ok(0) => Err(format!("invalid {name}: must be a positive number")),
            Ok(n) => Ok(n.min(max)),
            Err(e) => Err(format!("invalid {name}: {e}")),
        },
    }
}

/// The TraceQL a request asks for: `q`, or the legacy `tags` (logfmt),
/// with `minDuration`/`maxDuration` as trace-duration filters.
fn request_query(p: &[(String, String)]) -> Result<traceql::Query, String> {
    let get = |name: &str| p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut text = match (get("q").filter(|q| !q.trim().is_empty()), get("tags")) {
        (Some(_), Some(t)) if !t.is_empty() => {
            return Err("invalid request: can't specify tags and q in the same query".into());
        }
        (Some(q), _) => q.to_owned(),
        (None, Some(t)) => shape::tags_to_traceql(t)?,
        (None, None) => "{}".to_owned(),
    };
    let mut extra = Vec::new();
    for (name, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        if let Some(v) = get(name).filter(|v| !v.is_empty()) {
            let nanos = crate::duration::parse_go_duration(v)
                .map_err(|e| format!("invalid {name}: {e}"))?;
            extra.push(format!("traceDuration {op} {nanos}ns"));
        }
    }
    if !extra.is_empty() {
        text = format!("({text}) && {{ {} }}", extra.join(" && "));
    }
    traceql::parse(&text).map_err(|e| e.to_string())
}

async fn search_handler(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = pairs(q.as_deref());
    let parsed = (|| -> Result<_, String> {
        let query = request_query(&p)?;
        let (start, end) = window(&p, &limits)?;
        let limit = number(&p, "limit", DEFAULT_LIMIT, search::MAX_LIMIT)?;
        let spss = number(&p, "spss", DEFAULT_SPSS, MAX_SPSS)?;
        Ok((query, start, end, limit, spss))
    })();
    let (query, start, end, limit, spss) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    match search::run(store.as_ref(), &query, start, end, limit, &scope).await {
        Ok(out) => {
            if !out.warnings.is_empty() {
                tracing::warn!(warnings = ?out.warnings, "TraceQL search answered with partial results");
            }
            axum::Json(shape::search_response(&query, &out, spss)).into_response()
        }
        Err(e) => store_error("search", &e),
    }
}

/// A Tempo trace id: up to 32 hex digits, left-padded with zeros.
fn parse_id(id: &str) -> Result<TraceId, String> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid trace id {id:?}: expected up to 32 hex digits"
        ));
    }
    let padded = format!("{id:0>32}");
    TraceId::from_hex(&padded).map_err(|e| format!("invalid trace id {id:?}: {e}"))
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf"))
}

/// The trace to show, corrected for skew unless `raw=true`; `partial`
/// when spans were hidden by the scope or left out by the cap.
async fn load(
    api: &Api,
    scope: &Scope,
    id: &str,
    q: Option<&str>,
) -> Result<(model::Trace, bool, String), Response> {
    let id = parse_id(id).map_err(bad_request)?;
    let raw = pairs(q)
        .iter()
        .any(|(k, v)| k == "raw" && (v == "true" || v == "1"));
    let found = match api
        .store
        .get_trace_capped(id, api.limits.max_trace_spans)
        .await
    {
        Ok(found) => found.and_then(|c| scoped::visible_capped(c, scope)),
        Err(e) => return Err(store_error("trace by id", &e)),
    };
    let Some((c, hidden)) = found else {
        return Err((StatusCode::NOT_FOUND, "trace not found").into_response());
    };
    let mut notes = Vec::new();
    if hidden > 0 {
        notes.push(scoped::hidden_warning(hidden));
    }
    if c.truncated {
        notes.push(crate::jaeger::TRUNCATED.to_owned());
    }
    let partial = !notes.is_empty();
    let trace =
        match crate::stitched::shown_trace(api.store.as_ref(), c.trace.clone(), raw, scope).await {
            Ok((t, warnings)) => {
                notes.extend(warnings);
                t
            }
            Err(e) => {
                tracing::debug!(error = %e, "no clock offsets; showing stored times");
                c.trace
            }
        };
    Ok((trace, partial, notes.join("; ")))
}

async fn trace_v1(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (trace, _, _) = match load(&api, &scope, &id, q.as_deref()).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if wants_protobuf(&headers) {
        return protobuf(otlp::trace_bytes(&trace.spans));
    }
    let batches = otlp::resource_spans_json(&otlp::resource_spans(&trace.spans));
    axum::Json(json!({"batches": batches})).into_response()
}

async fn trace_v2(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (trace, partial, message) = match load(&api, &scope, &id, q.as_deref()).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if wants_protobuf(&headers) {
        return protobuf(otlp::response_bytes(&trace.spans, partial, message));
    }
    let spans = otlp::resource_spans_json(&otlp::resource_spans(&trace.spans));
    let mut body = json!({"trace": {"resourceSpans": spans}});
    if partial {
        body["status"] = json!("PARTIAL");
    }
    if !message.is_empty() {
        body["message"] = json!(message);
    }
    axum::Json(body).into_response()
}

fn protobuf(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], bytes).into_response()
}

#[cfg(test)]
mod tests;
