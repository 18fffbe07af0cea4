//! The Zipkin v2 query API (openzipkin `zipkin2-api.yaml`, and what Zipkin
//! Lens calls: `zipkin-lens/src/constants/api.ts`), served on the
//! gateway's `--zipkin-http` port under `/api/v2/…` and, for Lens behind a
//! proxy that keeps its base path, `/zipkin/api/v2/…`:
//!
//! | route | answers |
//! |---|---|
//! | `GET /api/v2/services` | service names, sorted |
//! | `GET /api/v2/spans?serviceName=` | the service's span names |
//! | `GET /api/v2/remoteServices?serviceName=` | `peer.service` values of the service's spans in its newest [`SAMPLE_TRACES`] traces of the last day |
//! | `GET /api/v2/traces?…` | `[[span…]…]` ([`params::search`]) |
//! | `GET /api/v2/trace/{id}` | `[span…]`; 404 `"<id> not found"` (text) |
//! | `GET /api/v2/traceMany?traceIds=a,b` | `[[span…]…]`, missing ones left out |
//! | `GET /api/v2/dependencies?endTs&lookback` | `[{parent, child, callCount, errorCount}]` from the stitched edges |
//! | `GET /api/v2/autocompleteKeys` | the store's indexed tag keys but `span.kind` and `peer.service` (span fields in Zipkin) |
//! | `GET /api/v2/autocompleteValues?key=` | that key's values in the newest [`SAMPLE_TRACES`] traces of the last hour; `[]` for other keys |
//! | `GET /zipkin/config.json` | Lens's UI settings (Zipkin's defaults) |
//!
//! Spans are Zipkin v2 JSON ([`model`]). Errors are Zipkin's: a status and
//! a plain-text message (400 names the parameter; store failures a fixed
//! text, [`crate::public_error`]). What Zipkin's shapes have no field for
//! (spans hidden by the scope, a truncated trace, a partial search) is said
//! in the [`WARNING_HEADER`] response header. Times are as stored: Lens
//! corrects clock skew itself.
//!
//! Every handler takes the caller's [`Scope`] ([`crate::scoped`]): lists
//! and searches answer for its clusters only, traces keep their in-scope
//! spans (none → 404), dependency links need both ends in scope.

pub mod model;
pub mod params;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use ::model::{Span, TraceQuery, access::Scope};
use axum::{
    Extension, Json, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use store::{SpanStore, StoreError};
use telemetry::clock::unix_ms;

use crate::{jaeger::TRUNCATED, public_error, scoped, stitched, window::QueryLimits};

type Store = Arc<dyn SpanStore>;

/// Traces read to list remote services or tag values.
pub const SAMPLE_TRACES: usize = 100;
/// Values one `autocompleteValues` answer lists, at most.
pub const MAX_VALUES: usize = 1_000;
/// How many more traces a search with `annotationQuery` words asks the
/// store for, since the words are confirmed on what it returns.
const WORD_OVERFETCH: usize = 4;
/// Indexed keys Zipkin shows as span fields, not tags (`kind`,
/// `remoteEndpoint.serviceName`): not offered for autocompletion.
const FIELD_KEYS: &[&str] = &["span.kind", model::REMOTE_SERVICE_TAG];
/// The response header carrying what Zipkin's JSON has no place for.
pub const WARNING_HEADER: &str = "x-meridian-warning";

#[derive(Clone)]
struct Api {
    store: Store,
    limits: QueryLimits,
    /// `autocompleteKeys`: the tag keys the store indexes.
    keys: Arc<[String]>,
}

/// The Zipkin routes under `/api/v2` and `/zipkin/api/v2`, and Lens's
/// `/zipkin/config.json`. `autocomplete_keys` are the keys
/// `autocompleteKeys` lists and `autocompleteValues` answers for.
pub fn router(store: Store, limits: QueryLimits, autocomplete_keys: Vec<String>) -> Router {
    let mut keys = autocomplete_keys;
    keys.retain(|k| !FIELD_KEYS.contains(&k.as_str()));
    keys.sort();
    keys.dedup();
    let api = Router::new()
        .route("/api/v2/services", get(services))
        .route("/api/v2/spans", get(span_names))
        .route("/api/v2/remoteServices", get(remote_services))
        .route("/api/v2/traces", get(traces))
        .route("/api/v2/trace/{id}", get(trace_by_id))
        .route("/api/v2/traceMany", get(trace_many))
        .route("/api/v2/dependencies", get(dependencies))
        .route("/api/v2/autocompleteKeys", get(autocomplete_keys_list))
        .route("/api/v2/autocompleteValues", get(autocomplete_values));
    Router::new()
        .merge(api.clone())
        .nest("/zipkin", api.route("/config.json", get(lens_config)))
        .with_state(Api {
            store,
            limits,
            keys: keys.into(),
        })
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, msg)
}

fn store_error(what: &'static str, e: StoreError) -> Response {
    let p = public_error::store_failure(what, &e);
    text(p.status, p.msg)
}

/// 200 with `body` as JSON and, when there are any, the warnings in
/// [`WARNING_HEADER`].
fn ok<T: Serialize>(body: T, warnings: &[String]) -> Response {
    let mut resp = Json(body).into_response();
    if !warnings.is_empty()
        && let Ok(v) = HeaderValue::from_str(&warnings.join("; "))
    {
        resp.headers_mut().insert(WARNING_HEADER, v);
    }
    resp
}

async fn services(State(api): State<Api>, Extension(scope): Extension<Scope>) -> Response {
    match api.store.services(&scope).await {
        Ok(mut s) => {
            s.sort();
            s.dedup();
            ok(s, &[])
        }
        Err(e) => store_error("zipkin services", e),
    }
}

async fn span_names(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = params::pairs(q.as_deref());
    let service = match params::required(&pairs, "serviceName") {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    match api.store.operations(service, None, &scope).await {
        Ok(ops) => {
            let names: BTreeSet<String> = ops.into_iter().map(|o| o.name).collect();
            ok(names, &[])
        }
        Err(e) => store_error("zipkin span names", e),
    }
}

/// The spans of the newest [`SAMPLE_TRACES`] traces (of `service`, when
/// given) in `[from, to]` ms, cut to the scope.
async fn sample(
    api: &Api,
    scope: &Scope,
    service: Option<&str>,
    (from, to): (i64, i64),
) -> Result<Vec<Span>, StoreError> {
    let nanos = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
    let query = TraceQuery {
        service: service.map(str::to_owned),
        operation: None,
        span_kind: None,
        tags: Vec::new(),
        start_min_unix_nano: nanos(from),
        start_max_unix_nano: nanos(to),
        duration_min_nanos: None,
        duration_max_nanos: None,
        limit: SAMPLE_TRACES,
        scope: scope.clone(),
    };
    let found = api.store.search(&query).await?;
    Ok(found
        .traces
        .into_iter()
        .filter_map(|t| scoped::visible(t, scope))
        .flat_map(|(t, _)| t.spans)
        .filter(|s| service.is_none_or(|svc| s.service_name() == svc))
        .collect())
}

/// The window of a sample: the last `lookback_ms`, at most the longest
/// window served.
fn recent(limits: &QueryLimits, lookback_ms: i64) -> (i64, i64) {
    let now = unix_ms();
    (
        now.saturating_sub(lookback_ms.min(limits.max_window_ms())),
        now,
    )
}

async fn remote_services(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = params::pairs(q.as_deref());
    let service = match params::required(&pairs, "serviceName") {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    let window = recent(&api.limits, params::DEFAULT_LOOKBACK_MS);
    match sample(&api, &scope, Some(service), window).await {
        Ok(spans) => {
            let names: BTreeSet<String> = spans.iter().filter_map(model::remote_service).collect();
            ok(names, &[])
        }
        Err(e) => store_error("zipkin remote services", e),
    }
}

/// Whether `span` has an annotation `word` or a tag keyed `word` (Zipkin's
/// bare `annotationQuery` term); `error` also matches a status ERROR.
fn has_word(span: &Span, word: &str) -> bool {
    span.events.iter().any(|e| e.name == word)
        || span
            .attributes
            .iter()
            .chain(&span.resource.attributes)
            .any(|kv| kv.key == word)
        || (word == "error" && span.is_error())
}

async fn traces(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = params::pairs(q.as_deref());
    let params::Search { mut query, words } = match params::search(&pairs, unix_ms(), &api.limits) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    // The store applies the scope before its limit.
    query.scope = scope.clone();
    let want = query.limit;
    if !words.is_empty() {
        query.limit = want.saturating_mul(WORD_OVERFETCH).min(params::MAX_LIMIT);
    }
    let found = match api.store.search(&query).await {
        Ok(f) => f,
        Err(e) => return store_error("zipkin search", e),
    };
    if !found.warnings.is_empty() {
        tracing::warn!(warnings = ?found.warnings, "zipkin search answered with partial results");
    }
    let out: Vec<Vec<model::ZSpan>> = found
        .traces
        .into_iter()
        .filter_map(|t| scoped::visible(t, &scope))
        .filter(|(t, _)| {
            words.is_empty()
                || t.spans
                    .iter()
                    .any(|s| query.matches_span(s) && words.iter().all(|w| has_word(s, w)))
        })
        .take(want)
        .map(|(t, _)| model::trace(&t))
        .collect();
    ok(out, &found.warnings)
}

async fn trace_by_id(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Response {
    let id = match params::trace_id(&id) {
        Ok(id) => id,
        Err(e) => return bad_request(e),
    };
    let found = match api
        .store
        .get_trace_capped(id, api.limits.max_trace_spans)
        .await
    {
        // A trace with no span in scope is as missing as one never stored.
        Ok(found) => found.and_then(|c| scoped::visible_capped(c, &scope)),
        Err(e) => return store_error("zipkin trace by id", e),
    };
    match found {
        // Zipkin's 404: the normalized id and "not found", as text.
        None => text(
            StatusCode::NOT_FOUND,
            format!("{} not found", id.to_jaeger_hex()),
        ),
        Some((c, hidden)) => {
            let mut warnings = Vec::new();
            if hidden > 0 {
                warnings.push(scoped::hidden_warning(hidden));
            }
            if c.truncated {
                warnings.push(TRUNCATED.to_owned());
            }
            ok(model::trace(&c.trace), &warnings)
        }
    }
}

async fn trace_many(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = params::pairs(q.as_deref());
    let ids = match params::trace_many(&pairs, &api.limits) {
        Ok(ids) => ids,
        Err(e) => return bad_request(e),
    };
    let mut out = Vec::with_capacity(ids.len());
    let mut hidden_total = 0;
    for id in ids {
        match api
            .store
            .get_trace_capped(id, api.limits.max_trace_spans)
            .await
        {
            Ok(Some(c)) => {
                if let Some((c, hidden)) = scoped::visible_capped(c, &scope) {
                    hidden_total += hidden;
                    out.push(model::trace(&c.trace));
                }
            }
            Ok(None) => {}
            Err(e) => return store_error("zipkin traces by id", e),
        }
    }
    let warnings: Vec<String> = (hidden_total > 0)
        .then(|| scoped::hidden_warning(hidden_total))
        .into_iter()
        .collect();
    ok(out, &warnings)
}

async fn dependencies(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = params::pairs(q.as_deref());
    let w = match params::window(&pairs, unix_ms(), &api.limits) {
        Ok(w) => w,
        Err(e) => return bad_request(e),
    };
    let edges = match stitched::edges_in(api.store.as_ref(), (w.from, w.to), &scope).await {
        Ok(e) => e,
        Err(e) => return store_error("zipkin dependencies", e),
    };
    ok(model_links(edges), &[])
}

/// Service-level links from node-level edge aggregates: calls inside one
/// service are left out (a node is `service@cluster`).
fn model_links(edges: BTreeMap<(String, String), stitch::EdgeAgg>) -> Vec<model::ZLink> {
    let mut by_service: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for ((p, c), agg) in edges {
        let (ps, cs) = (
            stitch::trace_state::split_node(&p).0,
            stitch::trace_state::split_node(&c).0,
        );
        if ps != cs {
            let e = by_service
                .entry((ps.to_owned(), cs.to_owned()))
                .or_default();
            e.0 += agg.calls;
            e.1 += agg.errors;
        }
    }
    by_service
        .into_iter()
        .map(|((parent, child), (calls, errors))| model::ZLink {
            parent,
            child,
            call_count: calls,
            error_count: errors,
        })
        .collect()
}

async fn autocomplete_keys_list(
    State(api): State<Api>,
    Extension(_scope): Extension<Scope>,
) -> Response {
    ok(api.keys.as_ref(), &[])
}

async fn autocomplete_values(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = params::pairs(q.as_deref());
    let key = match params::required(&pairs, "key") {
        Ok(k) => k,
        Err(e) => return bad_request(e),
    };
    // Zipkin answers [] for a key it was not configured for.
    if !api.keys.iter().any(|k| k == key) {
        return ok(Vec::<String>::new(), &[]);
    }
    let window = recent(&api.limits, 3_600_000);
    match sample(&api, &scope, None, window).await {
        Ok(spans) => {
            let values: BTreeSet<String> = spans
                .iter()
                .filter_map(|s| model::tag_value(s, key))
                .take(MAX_VALUES)
                .collect();
            ok(values, &[])
        }
        Err(e) => store_error("zipkin autocomplete values", e),
    }
}

/// Lens reads `<base>/config.json` before anything else; these are the
/// defaults of Zipkin's `ZipkinUiConfiguration` (search and the
/// dependency graph on, 15 minutes' lookback, 10 traces).
async fn lens_config(Extension(_scope): Extension<Scope>) -> Response {
    ok(
        serde_json::json!({
            "environment": "",
            "queryLimit": params::DEFAULT_LIMIT,
            "defaultLookback": 900_000,
            "searchEnabled": true,
            "dependency": {"enabled": true, "lowErrorRate": 0.5, "highErrorRate": 0.75},
        }),
        &[],
    )
}
