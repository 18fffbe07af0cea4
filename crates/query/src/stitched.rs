//! What stitching adds to the query API:
//!
//! - `GET /api/dependencies?endTs=&lookback=` (ms): Jaeger's service
//!   dependencies, `{"data": [{"parent", "child", "callCount"}]}`, summed
//!   over clusters (calls inside one service are left out, as Jaeger does);
//! - `GET /api/v1/graph?endTs=&lookback=`: nodes `service@cluster` and
//!   edges with calls, errors, p50/p99 of the child's duration, the mean
//!   gap (child start − parent start) and `crossCluster`;
//! - `GET /api/v1/clusters`: each cluster's clock offset relative to the
//!   reference cluster and when it was last seen;
//! - `GET /api/v1/traces/{id}/summary`: completeness and provenance;
//! - `GET /api/v1/traces/{id}/links`: the traces a trace links to and the
//!   traces that link to it.
//!
//! Windows default to the last hour; a lookback longer than the limit's
//! window (7 days unless configured), a negative `endTs` or a lookback
//! that is not positive is refused with 400. Loaded traces hold at most
//! the limit's spans (`truncated` in the summary says so).
//!
//! Every handler takes the caller's [`Scope`] ([`crate::scoped`]): graph
//! and dependency edges need both ends in scope, clusters outside it are
//! not listed, a summary or links answer describes the in-scope spans only
//! (404 when there are none), and a reference cluster outside the scope is
//! not named.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use axum::{
    Extension, Json, Router,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use model::{Trace, TraceId, access::Scope};
use serde_json::{Value, json};
use store::{RecordKind, RecordScan, SpanStore, StoreError};
use telemetry::clock::unix_ms;

use stitch::{
    Backlink, EdgeAgg, Summary,
    trace_state::{parse_edge_key, split_node},
};

use crate::{
    public_error, scoped,
    skew::{self, Applied},
    window::{MsWindow, Param, QueryLimits},
};

type Store = Arc<dyn SpanStore>;

const HOUR_MS: i64 = 3_600_000;
/// Edge records read per request, at most (minutes × edges × shards).
const MAX_EDGE_RECORDS: usize = 200_000;

#[derive(Clone)]
struct Api {
    store: Store,
    limits: QueryLimits,
}

pub fn router(store: Store, limits: QueryLimits) -> Router {
    Router::new()
        .route("/api/dependencies", get(dependencies))
        .route("/api/v1/graph", get(graph))
        .route("/api/v1/clusters", get(clusters))
        .route("/api/v1/traces/{id}/summary", get(summary))
        .route("/api/v1/traces/{id}/links", get(links))
        .with_state(Api { store, limits })
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

fn store_error(what: &'static str, e: StoreError) -> Response {
    let p = public_error::store_failure(what, &e);
    (p.status, Json(json!({"error": p.msg, "code": p.code}))).into_response()
}

/// `endTs` and `lookback` (ms) → `[from, to]`, checked: `endTs` not
/// negative, `lookback` positive and at most `max_ms`.
pub fn window(query: Option<&str>, now: i64, max_ms: i64) -> Result<(i64, i64), String> {
    let mut end = now;
    let mut lookback = HOUR_MS;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let num = || {
            v.parse::<i64>()
                .map_err(|_| format!("parameter {k:?} must be milliseconds, got {v:?}"))
        };
        match k.as_ref() {
            "endTs" => end = num()?,
            "lookback" => lookback = num()?,
            _ => {}
        }
    }
    let w = MsWindow::lookback(
        Param::new("endTs", end),
        Param::new("lookback", lookback),
        max_ms,
    )
    .map_err(|e| e.to_string())?;
    Ok((w.from, w.to))
}

/// Edge aggregates in a window, summed over minutes and shards, by
/// (parent node, child node); only edges whose two ends are in `scope`.
/// Also the Zipkin API's `/api/v2/dependencies`.
pub(crate) async fn edges_in(
    store: &dyn SpanStore,
    (from, to): (i64, i64),
    scope: &Scope,
) -> Result<BTreeMap<(String, String), EdgeAgg>, StoreError> {
    // A minute's record carries the minute's start.
    let records = store
        .scan_records(&RecordScan {
            kind: RecordKind::Edge,
            prefix: String::new(),
            time: Some((from.saturating_sub(59_999), to)),
            limit: MAX_EDGE_RECORDS,
            trace: None,
        })
        .await?;
    let mut out: BTreeMap<(String, String), EdgeAgg> = BTreeMap::new();
    for r in records {
        let (Some((_, parent, child)), Ok(agg)) = (
            parse_edge_key(&r.key),
            serde_json::from_slice::<EdgeAgg>(&r.value),
        ) else {
            continue;
        };
        if !scoped::edge_visible(scope, split_node(&parent).1, split_node(&child).1) {
            continue;
        }
        out.entry((parent, child)).or_default().merge(&agg);
    }
    Ok(out)
}

async fn dependencies(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let w = match window(q.as_deref(), unix_ms(), limits.max_window_ms()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let edges = match edges_in(store.as_ref(), w, &scope).await {
        Ok(e) => e,
        Err(e) => return store_error("dependencies", e),
    };
    let mut by_service: BTreeMap<(String, String), u64> = BTreeMap::new();
    for ((p, c), agg) in edges {
        let (ps, cs) = (split_node(&p).0, split_node(&c).0);
        if ps != cs {
            *by_service
                .entry((ps.to_owned(), cs.to_owned()))
                .or_default() += agg.calls;
        }
    }
    let data: Vec<Value> = by_service
        .into_iter()
        .map(|((parent, child), n)| json!({"parent": parent, "child": child, "callCount": n}))
        .collect();
    let total = data.len();
    Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

async fn graph(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let w = match window(q.as_deref(), unix_ms(), limits.max_window_ms()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let edges = match edges_in(store.as_ref(), w, &scope).await {
        Ok(e) => e,
        Err(e) => return store_error("graph", e),
    };
    let secs = ((w.1 - w.0) as f64 / 1_000.0).max(1.0);
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut out_edges = Vec::with_capacity(edges.len());
    for ((p, c), agg) in &edges {
        nodes.insert(p.clone());
        nodes.insert(c.clone());
        let cross = split_node(p).1 != split_node(c).1;
        out_edges.push(json!({
            "source": p,
            "target": c,
            "calls": agg.calls,
            "errors": agg.errors,
            "ratePerSec": agg.calls as f64 / secs,
            "p50Ms": agg.latency.quantile_ms(0.5),
            "p99Ms": agg.latency.quantile_ms(0.99),
            "gapMs": if agg.calls == 0 { 0.0 } else { agg.gap_sum_ns as f64 / agg.calls as f64 / 1e6 },
            "crossCluster": cross,
        }));
    }
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let (service, cluster) = split_node(n);
            json!({"id": n, "service": service, "cluster": cluster})
        })
        .collect();
    Json(json!({"nodes": nodes, "edges": out_edges, "from": w.0, "to": w.1})).into_response()
}

/// The offsets to apply, by cluster, and the reference cluster.
async fn applied_offsets(
    store: &dyn SpanStore,
) -> Result<(String, BTreeMap<String, Applied>), StoreError> {
    let stored = stitch::offsets(store).await?;
    let reference = stored
        .values()
        .max_by_key(|o| o.updated_ms)
        .map(|o| o.reference.clone())
        .unwrap_or_default();
    let applied = stored
        .into_iter()
        .filter(|(_, o)| o.samples > 0 && o.reference == reference)
        .map(|(c, o)| {
            (
                c,
                Applied {
                    offset_ns: o.offset_ns,
                    samples: o.samples,
                },
            )
        })
        .collect();
    Ok((reference, applied))
}

/// How a warning names the reference cluster: by name when in scope.
fn reference_label(reference: &str, scope: &Scope) -> String {
    if scope.allows(reference) {
        format!("cluster {reference}")
    } else {
        "the reference cluster".to_owned()
    }
}

/// The trace as the query shows it: corrected for clock skew unless
/// `raw`, with the correction's warnings. `trace` is already cut to
/// `scope`, which only decides how the reference cluster is named.
pub async fn shown_trace(
    store: &dyn SpanStore,
    mut trace: Trace,
    raw: bool,
    scope: &Scope,
) -> Result<(Trace, Vec<String>), StoreError> {
    if raw {
        return Ok((trace, Vec::new()));
    }
    let (reference, offsets) = applied_offsets(store).await?;
    let warnings = skew::correct(&mut trace, &reference_label(&reference, scope), &offsets);
    Ok((trace, warnings))
}

/// [`shown_trace`] for several traces, reading the offsets once.
pub async fn shown_traces(
    store: &dyn SpanStore,
    traces: Vec<Trace>,
    raw: bool,
    scope: &Scope,
) -> Result<Vec<(Trace, Vec<String>)>, StoreError> {
    if raw {
        return Ok(traces.into_iter().map(|t| (t, Vec::new())).collect());
    }
    let (reference, offsets) = applied_offsets(store).await?;
    let label = reference_label(&reference, scope);
    Ok(traces
        .into_iter()
        .map(|mut t| {
            let w = skew::correct(&mut t, &label, &offsets);
            (t, w)
        })
        .collect())
}

async fn clusters(
    State(Api { store, .. }): State<Api>,
    Extension(scope): Extension<Scope>,
) -> Response {
    let stored = match stitch::offsets(store.as_ref()).await {
        Ok(s) => s,
        Err(e) => return store_error("clusters", e),
    };
    let reference = stored
        .values()
        .max_by_key(|o| o.updated_ms)
        .map(|o| o.reference.clone());
    let data: Vec<Value> = stored
        .values()
        .filter(|o| scope.allows(&o.cluster))
        .map(|o| {
            let is_ref = reference.as_deref() == Some(o.cluster.as_str());
            json!({
                "cluster": o.cluster,
                "offsetMs": if o.samples > 0 || is_ref { Some(o.offset_ns as f64 / 1e6) } else { None },
                "pairs": o.samples,
                "reference": is_ref,
                "referenceCluster": scope.allows(&o.reference).then_some(&o.reference),
                "lastSeenMs": o.updated_ms,
            })
        })
        .collect();
    Json(json!({"data": data})).into_response()
}

fn trace_id(id: &str) -> Result<TraceId, Box<Response>> {
    TraceId::from_hex(id).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("invalid trace id {id:?}: {e}"),
        ))
    })
}

async fn summary(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Response {
    let id = match trace_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let (trace, stored) = match tokio::join!(
        store.get_trace_capped(id, limits.max_trace_spans),
        stitch::stored_summary(store.as_ref(), id)
    ) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => return store_error("trace summary", e),
    };
    let Some((trace, hidden)) = trace.and_then(|t| scoped::visible_capped(t, &scope)) else {
        return error(StatusCode::NOT_FOUND, "trace not found");
    };
    let (reference, mut offsets) = match applied_offsets(store.as_ref()).await {
        Ok(o) => o,
        Err(e) => return store_error("trace summary", e),
    };
    offsets.retain(|c, _| scope.allows(c));
    let reference = if scope.allows(&reference) {
        reference
    } else {
        String::new()
    };
    // What the stitching worker recorded of hidden clusters stays hidden.
    let stored = stored.map(|mut s| {
        s.dropped.retain(|d| scope.allows(&d.cluster));
        s
    });
    let mut body = summary_json(&trace.trace, stored.as_ref(), &(reference, offsets));
    body["truncated"] = json!(trace.truncated);
    if hidden > 0 {
        body["warnings"] = json!([scoped::hidden_warning(hidden)]);
    }
    Json(body).into_response()
}

/// The summary answer: structure from the stored trace, arrival facts
/// (late spans, policies, drops) from the stitching worker's record.
pub fn summary_json(
    trace: &Trace,
    stored: Option<&Summary>,
    (reference, offsets): &(String, BTreeMap<String, Applied>),
) -> Value {
    let ids: BTreeSet<_> = trace.spans.iter().map(|s| s.span_id).collect();
    let mut clusters: BTreeMap<&str, u64> = BTreeMap::new();
    let mut services: BTreeSet<&str> = BTreeSet::new();
    let mut missing: BTreeSet<String> = BTreeSet::new();
    let mut root = None;
    let mut errors = 0u64;
    let (mut start, mut end) = (u64::MAX, 0u64);
    for s in &trace.spans {
        *clusters.entry(s.cluster.as_str()).or_default() += 1;
        services.insert(s.service_name());
        errors += u64::from(s.is_error());
        start = start.min(s.start_unix_nano);
        end = end.max(s.end_unix_nano);
        match s.parent_span_id {
            None => {
                root = Some(
                    json!({"service": s.service_name(), "operation": s.name, "cluster": s.cluster.as_str()}),
                );
            }
            Some(p) if !ids.contains(&p) => {
                missing.insert(p.to_hex());
            }
            Some(_) => {}
        }
    }
    let skew: Vec<Value> = clusters
        .keys()
        .filter_map(|c| offsets.get(*c).map(|o| (c, o)))
        .map(|(c, o)| json!({"cluster": c, "offsetMs": o.offset_ns as f64 / 1e6, "pairs": o.samples}))
        .collect();
    let dropped: Vec<Value> = stored
        .map(|s| {
            s.dropped
                .iter()
                .map(|d| json!({"cluster": d.cluster, "reason": d.reason, "spans": d.spans}))
                .collect()
        })
        .unwrap_or_default();
    let policies: Vec<&String> = stored
        .map(|s| s.policies.iter().collect())
        .unwrap_or_default();
    json!({
        "traceID": trace.trace_id.to_hex(),
        "clusters": clusters.keys().collect::<Vec<_>>(),
        "spansByCluster": clusters,
        "services": services,
        "root": root,
        "spanCount": trace.spans.len(),
        "errorCount": errors,
        "startUs": start / 1_000,
        "endUs": end / 1_000,
        "missingParents": missing,
        "lateSpans": stored.map_or(0, |s| s.late_spans),
        "dropped": dropped,
        "policy": policies.first(),
        "policies": policies,
        "skew": skew,
        "skewReference": reference,
        "stitched": stored.is_some(),
        "stitchedSpans": stored.map_or(0, |s| s.spans),
    })
}

async fn links(
    State(Api { store, limits }): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Response {
    let id = match trace_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let scan = RecordScan {
        kind: RecordKind::Backlink,
        prefix: format!("{}|", id.to_hex()),
        time: None,
        limit: 10_000,
        trace: Some(id),
    };
    let incoming = store.scan_records(&scan);
    let (trace, incoming) =
        match tokio::join!(store.get_trace_capped(id, limits.max_trace_spans), incoming) {
            (Ok(t), Ok(i)) => (
                t.and_then(|c| scoped::visible_capped(c, &scope))
                    .map(|(c, _)| c.trace),
                i,
            ),
            (Err(e), _) | (_, Err(e)) => return store_error("trace links", e),
        };
    let outgoing: Vec<Value> = trace
        .iter()
        .flat_map(|t| t.spans.iter())
        .flat_map(|s| {
            s.links.iter().map(move |l| {
                json!({"traceID": l.trace_id.to_hex(), "spanID": l.span_id.to_hex(), "fromSpanID": s.span_id.to_hex()})
            })
        })
        .collect();
    let mut seen = HashMap::new();
    let incoming: Vec<Value> = incoming
        .into_iter()
        .filter_map(|r| serde_json::from_slice::<Backlink>(&r.value).ok())
        .filter(|b| {
            seen.insert(
                (b.trace_id.clone(), b.span_id.clone(), b.to_span_id.clone()),
                (),
            )
            .is_none()
        })
        .map(|b| json!({"traceID": b.trace_id, "spanID": b.span_id, "toSpanID": b.to_span_id}))
        .collect();
    let incoming = if scope.is_all() {
        incoming
    } else {
        match linking_in_scope(store.as_ref(), incoming, &scope, limits.max_trace_spans).await {
            Ok(i) => i,
            Err(e) => return store_error("trace links", e),
        }
    };
    if trace.is_none() && incoming.is_empty() {
        return error(StatusCode::NOT_FOUND, "trace not found");
    }
    Json(json!({"traceID": id.to_hex(), "outgoing": outgoing, "incoming": incoming}))
        .into_response()
}

/// Linking traces a scoped caller checks, at most: a backlink names no
/// cluster, so each linking span is looked up in its trace.
const MAX_SCOPED_BACKLINKS: usize = 100;

/// The backlinks whose linking span is of a cluster in `scope` (the first
/// [`MAX_SCOPED_BACKLINKS`] linking traces are checked).
async fn linking_in_scope(
    store: &dyn SpanStore,
    incoming: Vec<Value>,
    scope: &Scope,
    cap: usize,
) -> Result<Vec<Value>, StoreError> {
    let mut clusters_of: HashMap<String, Option<Trace>> = HashMap::new();
    let mut out = Vec::new();
    for link in incoming {
        let (Some(tid), Some(sid)) = (link["traceID"].as_str(), link["spanID"].as_str()) else {
            continue;
        };
        if !clusters_of.contains_key(tid) {
            if clusters_of.len() >= MAX_SCOPED_BACKLINKS {
                break;
            }
            let trace = match TraceId::from_hex(tid) {
                Ok(id) => store.get_trace_capped(id, cap).await?.map(|c| c.trace),
                Err(_) => None,
            };
            clusters_of.insert(tid.to_owned(), trace);
        }
        let visible = clusters_of
            .get(tid)
            .and_then(Option::as_ref)
            .is_some_and(|t| {
                t.spans
                    .iter()
                    .any(|s| s.span_id.to_hex() == sid && scope.allows_id(&s.cluster))
            });
        if visible {
            out.push(link);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK_MS: i64 = 7 * 24 * HOUR_MS;

    #[test]
    fn windows_default_and_are_checked() {
        assert_eq!(
            window(None, 10 * HOUR_MS, WEEK_MS),
            Ok((9 * HOUR_MS, 10 * HOUR_MS))
        );
        assert_eq!(
            window(Some("endTs=5000&lookback=2000"), 0, WEEK_MS),
            Ok((3_000, 5_000))
        );
        assert_eq!(
            window(Some("endTs=0&lookback=604800000"), 0, WEEK_MS),
            Ok((-WEEK_MS, 0))
        );
        for (q, param) in [
            ("lookback=-1", "lookback"),
            ("lookback=0", "lookback"),
            ("lookback=-9223372036854775808", "lookback"),
            ("endTs=abc", "endTs"),
            ("endTs=-9223372036854775808&lookback=1", "endTs"),
            (
                "endTs=9223372036854775807&lookback=9223372036854775807",
                "lookback",
            ),
            ("endTs=0&lookback=999999999999", "lookback"),
        ] {
            let e = window(Some(q), 0, WEEK_MS).expect_err(q);
            assert!(e.contains(param), "{q}: {e}");
        }
    }
}
