//! HTTP: Jaeger's SPM metrics API (`/api/metrics/{calls,errors,latencies}`,
//! what Jaeger UI's Monitor tab calls) and Meridian's
//! `/api/v1/metrics/red`. Bad parameters answer 400 with `{"error": …}`.
//!
//! SPM semantics (all times ms): points every `step` over
//! `(endTs − lookback, endTs]`; each point is computed over the trailing
//! `ratePer` window (like `rate(x[ratePer])`): calls per second, errors /
//! calls, or the `quantile` latency in ms. Only series of `spanKind`
//! (default `server`) count.
//!
//! Every time parameter is checked before any work ([`::query::window`]):
//! times are not negative, `lookback`, `step` and `ratePer` are positive,
//! a window is at most the longest RED retention ([`RedConfig::horizon`])
//! and has at most [`MAX_POINTS`] points, counted before the point loop,
//! which runs over the count. Store failures answer a code and a fixed
//! message; the store's text is only logged.
//!
//! Both take the caller's `Extension<Scope>` (required: a route without
//! the access layer answers 500): only series of clusters in scope are
//! read ([`query::load_scoped`]).

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Extension, Json, Router,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use model::{
    access::Scope,
    red::{Aggregate, Selector, SeriesKey},
};
use serde_json::{Value, json};
use store::SpanStore;

use super::{
    RedConfig,
    keys::Resolution,
    query::{self, QueryError},
};
use ::query::{
    jaeger::params::pairs,
    public_error,
    window::{self, MsWindow, Param},
};

/// Most points per series one request may ask for.
pub const MAX_POINTS: i64 = 11_000;

#[derive(Clone)]
struct Api {
    store: Arc<dyn SpanStore>,
    cfg: RedConfig,
}

pub fn router(store: Arc<dyn SpanStore>, cfg: RedConfig) -> Router {
    Router::new()
        .route("/api/metrics/{metric}", get(spm))
        .route("/api/v1/metrics/red", get(red))
        .with_state(Api { store, cfg })
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

fn failed(what: &'static str, e: QueryError) -> Response {
    match e {
        QueryError::TooLarge => bad(e.to_string()),
        QueryError::Store(e) => {
            let p = public_error::store_failure(what, &e);
            (p.status, Json(json!({"error": p.msg, "code": p.code}))).into_response()
        }
    }
}

fn first<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn int(p: &[(String, String)], key: &str, default: i64) -> Result<i64, String> {
    first(p, key).map_or(Ok(default), |v| {
        v.parse::<i64>()
            .map_err(|_| format!("parameter '{key}' must be an integer (ms), got {v:?}"))
    })
}

/// `server`, `SPAN_KIND_SERVER`, `Server` → `server`.
fn span_kind(v: &str) -> Result<String, String> {
    let k = v.trim().to_ascii_lowercase();
    let k = k.strip_prefix("span_kind_").unwrap_or(&k).to_owned();
    match k.as_str() {
        "server" | "client" | "producer" | "consumer" | "internal" | "unspecified" => Ok(k),
        _ => Err(format!(
            "spanKind {v:?}: one of server, client, producer, consumer, internal"
        )),
    }
}

/// A time range with a step, checked: `0 <= from < to`, at most
/// `max_ms` long, at most [`MAX_POINTS`] steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
    pub step: i64,
}

impl Range {
    pub fn new(from: Param, to: Param, step: Param, max_ms: i64) -> Result<Self, String> {
        let w = MsWindow::between(from, to, max_ms).map_err(|e| e.to_string())?;
        window::points(w.len_ms(), step, MAX_POINTS).map_err(|e| e.to_string())?;
        Ok(Self {
            from: w.from,
            to: w.to,
            step: step.value,
        })
    }
}

/// What an SPM request asked for (pure).
#[derive(Debug, Clone, PartialEq)]
pub struct SpmRequest {
    pub metric: String,
    pub services: Vec<String>,
    pub by_operation: bool,
    pub end: i64,
    pub lookback: i64,
    pub step: i64,
    pub rate_per: i64,
    pub span_kinds: Vec<String>,
    pub quantile: f64,
    /// Points per series, `lookback / step`, at most [`MAX_POINTS`].
    pub points: i64,
    /// Where the read starts: `end − lookback − ratePer`.
    pub read_from: i64,
}

/// Parses an SPM request; windows are at most `max_ms` (the longest RED
/// retention) long.
pub fn parse_spm(
    metric: &str,
    p: &[(String, String)],
    now_ms: i64,
    max_ms: i64,
) -> Result<SpmRequest, String> {
    if !matches!(metric, "calls" | "errors" | "latencies") {
        return Err(format!(
            "unknown metric {metric:?}: one of calls, errors, latencies"
        ));
    }
    let services: Vec<String> = p
        .iter()
        .filter(|(k, v)| k == "service" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    if services.is_empty() {
        return Err("parameter 'service' is required".into());
    }
    let kinds: Result<Vec<String>, String> = p
        .iter()
        .filter(|(k, v)| k == "spanKind" && !v.is_empty())
        .map(|(_, v)| span_kind(v))
        .collect();
    let mut span_kinds = kinds?;
    if span_kinds.is_empty() {
        span_kinds.push("server".into());
    }
    let quantile = match first(p, "quantile") {
        Some(q) => q
            .parse::<f64>()
            .ok()
            .filter(|q| (0.0..=1.0).contains(q))
            .ok_or_else(|| format!("quantile {q:?} must be a number in [0, 1]"))?,
        None if metric == "latencies" => return Err("parameter 'quantile' is required".into()),
        None => 0.95,
    };
    let param = |key: &'static str, default: i64| int(p, key, default).map(|v| Param::new(key, v));
    let (end, lookback) = (param("endTs", now_ms)?, param("lookback", 3_600_000)?);
    let (step, rate_per) = (param("step", 60_000)?, param("ratePer", 600_000)?);
    let w = MsWindow::lookback(end, lookback, max_ms).map_err(|e| e.to_string())?;
    let points = window::points(w.len_ms(), step, MAX_POINTS).map_err(|e| e.to_string())?;
    // The trailing rate window is a window too: positive, at most max_ms.
    MsWindow::lookback(end, rate_per, max_ms).map_err(|e| e.to_string())?;
    let read_from = w
        .from
        .checked_sub(rate_per.value)
        .ok_or("parameter 'ratePer' is out of range")?;
    Ok(SpmRequest {
        metric: metric.to_owned(),
        services,
        by_operation: first(p, "groupByOperation").is_some_and(|v| v == "true" || v == "1"),
        end: w.to,
        lookback: w.len_ms(),
        step: step.value,
        rate_per: rate_per.value,
        span_kinds,
        quantile,
        points,
        read_from,
    })
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The SPM family from rows (pure): per group, per point `t` in
/// `(end − lookback, end]` by `step`, the figure over `(t − ratePer, t]`.
pub fn spm_family(req: &SpmRequest, rows: &[(SeriesKey, i64, Aggregate, i64)]) -> Value {
    let (name, help) = match (req.metric.as_str(), req.by_operation) {
        ("calls", false) => ("service_call_rate", "calls/sec, grouped by service"),
        ("calls", true) => (
            "service_operation_call_rate",
            "calls/sec, grouped by service & operation",
        ),
        ("errors", false) => (
            "service_error_rate",
            "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service",
        ),
        ("errors", true) => (
            "service_operation_error_rate",
            "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service & operation",
        ),
        (_, false) => ("service_latencies", "latency in ms, grouped by service"),
        (_, true) => (
            "service_operation_latencies",
            "latency in ms, grouped by service & operation",
        ),
    };
    type Buckets<'a> = Vec<(i64, i64, &'a Aggregate)>;
    let mut groups: BTreeMap<(String, Option<String>), Buckets<'_>> = BTreeMap::new();
    for (s, start, agg, width) in rows {
        let op = req.by_operation.then(|| s.operation.clone());
        groups
            .entry((s.service.clone(), op))
            .or_default()
            .push((*start, *width, agg));
    }
    let mut metrics = Vec::new();
    for ((service, op), buckets) in groups {
        let mut points = Vec::new();
        let first = req.end.saturating_sub(req.lookback);
        // Bounded by the point count parse_spm checked, never by time.
        for i in 1..=req.points {
            let Some(t) = i.checked_mul(req.step).and_then(|d| first.checked_add(d)) else {
                break;
            };
            let mut agg = Aggregate::default();
            for (start, width, a) in &buckets {
                // A bucket counts when it lies inside (t − ratePer, t].
                if *start >= t.saturating_sub(req.rate_per) && start.saturating_add(*width) <= t {
                    agg.merge(a);
                }
            }
            let secs = req.rate_per as f64 / 1000.0;
            let value = match req.metric.as_str() {
                "calls" => Some(agg.count as f64 / secs),
                "errors" => (agg.count > 0).then(|| agg.error_ratio()),
                _ => agg.quantile_ms(req.quantile),
            };
            if let Some(v) = value {
                points.push(json!({"gaugeValue": {"doubleValue": v}, "timestamp": rfc3339(t)}));
            }
        }
        let mut labels = vec![json!({"name": "service_name", "value": service})];
        if let Some(op) = op {
            labels.push(json!({"name": "operation", "value": op}));
        }
        metrics.push(json!({"labels": labels, "metricPoints": points}));
    }
    json!({"name": name, "type": "GAUGE", "help": help, "metrics": metrics})
}

async fn load_range(
    api: &Api,
    sel: &Selector,
    from: i64,
    to: i64,
    step: i64,
    scope: &Scope,
) -> Result<(Resolution, Vec<(SeriesKey, i64, Aggregate)>), QueryError> {
    let res = query::choose(&api.cfg, api.cfg.clock.unix_ms(), from, to, step);
    let from = model::red::window_start(from, res.width_ms());
    Ok((
        res,
        query::load_scoped(&api.store, res, sel, from, to, scope).await?,
    ))
}

async fn spm(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(metric): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = pairs(q.as_deref());
    let req = match parse_spm(&metric, &p, api.cfg.clock.unix_ms(), api.cfg.horizon_ms()) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let from = req.read_from;
    let step = req.step.min(req.rate_per);
    let mut rows = Vec::new();
    for kind in &req.span_kinds {
        let sel = Selector {
            services: req.services.clone(),
            span_kind: Some(kind.clone()),
            ..Default::default()
        };
        match load_range(&api, &sel, from, req.end, step, &scope).await {
            Ok((res, r)) => rows.extend(r.into_iter().map(|(s, t, a)| (s, t, a, res.width_ms()))),
            Err(e) => return failed("spm metrics", e),
        }
    }
    Json(spm_family(&req, &rows)).into_response()
}

/// `/api/v1/metrics/red` points per (cluster, service, operation) (pure).
pub fn red_series(range: Range, rows: Vec<(SeriesKey, i64, Aggregate)>) -> Vec<Value> {
    let grouped = query::bucket(rows, range.from, range.step, |s| {
        (s.cluster.clone(), s.service.clone(), s.operation.clone())
    });
    let secs = range.step as f64 / 1000.0;
    grouped
        .into_iter()
        .map(|((cluster, service, operation), buckets)| {
            let mut total = Aggregate::default();
            let points: Vec<Value> = buckets
                .iter()
                .map(|(t, a)| {
                    total.merge(a);
                    json!({
                        "time_ms": t,
                        "calls": a.count,
                        "errors": a.errors,
                        "rate": a.count as f64 / secs,
                        "error_ratio": a.error_ratio(),
                        "p50_ms": a.quantile_ms(0.5),
                        "p95_ms": a.quantile_ms(0.95),
                        "p99_ms": a.quantile_ms(0.99),
                    })
                })
                .collect();
            let exemplars: Vec<Value> = total
                .exemplars
                .iter()
                .map(|e| json!({"trace_id": e.trace_id, "duration_ms": e.duration_ns as f64 / 1e6, "error": e.error}))
                .collect();
            json!({
                "cluster": cluster,
                "service": service,
                "operation": operation,
                "points": points,
                "total": {
                    "calls": total.count,
                    "errors": total.errors,
                    "error_ratio": total.error_ratio(),
                    "p50_ms": total.quantile_ms(0.5),
                    "p95_ms": total.quantile_ms(0.95),
                    "p99_ms": total.quantile_ms(0.99),
                },
                "exemplars": exemplars,
            })
        })
        .collect()
}

async fn red(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = pairs(q.as_deref());
    let now = api.cfg.clock.unix_ms();
    let parsed = (|| {
        let to = Param::new("to", int(&p, "to", now)?);
        to.non_negative().map_err(|e| e.to_string())?;
        let from = Param::new("from", int(&p, "from", to.value.saturating_sub(3_600_000))?);
        let step = Param::new("step", int(&p, "step", 60_000)?);
        let kind = first(&p, "span_kind").map(span_kind).transpose()?;
        Ok::<_, String>((Range::new(from, to, step, api.cfg.horizon_ms())?, kind))
    })();
    let (range, span_kind) = match parsed {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let sel = Selector {
        cluster: first(&p, "cluster").map(str::to_owned),
        services: first(&p, "service")
            .map(str::to_owned)
            .into_iter()
            .collect(),
        operation: first(&p, "operation").map(str::to_owned),
        span_kind,
    };
    match load_range(&api, &sel, range.from, range.to, range.step, &scope).await {
        Ok((res, rows)) => Json(json!({
            "from": range.from,
            "to": range.to,
            "step": range.step,
            "resolution_ms": res.width_ms(),
            "series": red_series(range, rows),
        }))
        .into_response(),
        Err(e) => failed("red metrics", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Vec<(String, String)> {
        pairs(Some(q))
    }

    const MAX: i64 = 400 * 86_400_000;

    fn parse_spm(metric: &str, p: &[(String, String)], now: i64) -> Result<SpmRequest, String> {
        super::parse_spm(metric, p, now, MAX)
    }

    #[test]
    fn spm_parameters_are_checked() {
        let r = parse_spm("calls", &p("service=a&service=b&groupByOperation=true&endTs=7200000&lookback=3600000&step=60000&ratePer=600000&spanKind=SPAN_KIND_CLIENT"), 0).expect("valid");
        assert_eq!(r.services, ["a", "b"]);
        assert!(r.by_operation);
        assert_eq!(r.span_kinds, ["client"]);
        assert!(
            parse_spm("calls", &p("lookback=1"), 0).is_err(),
            "service required"
        );
        assert!(
            parse_spm("latencies", &p("service=a"), 0).is_err(),
            "quantile required"
        );
        assert!(parse_spm("latencies", &p("service=a&quantile=2"), 0).is_err());
        assert!(parse_spm("bogus", &p("service=a"), 0).is_err());
        assert!(parse_spm("calls", &p("service=a&step=0"), 0).is_err());
        assert!(parse_spm("calls", &p("service=a&spanKind=weird"), 0).is_err());
    }

    #[test]
    fn spm_points_cover_the_trailing_rate_window() {
        let key = SeriesKey {
            cluster: "eu".into(),
            service: "a".into(),
            operation: "op".into(),
            span_kind: "server".into(),
            status_code: "ERROR".into(),
        };
        let mut agg = Aggregate::default();
        for _ in 0..60 {
            agg.observe(5_000_000, true, None);
        }
        let rows = vec![(key, 50_000, agg, 10_000)];
        let mut req = parse_spm(
            "calls",
            &p("service=a&endTs=120000&lookback=120000&step=60000&ratePer=60000"),
            0,
        )
        .expect("valid");
        let fam = spm_family(&req, &rows);
        assert_eq!(fam["name"], "service_call_rate");
        let pts = &fam["metrics"][0]["metricPoints"];
        assert_eq!(pts[0]["gaugeValue"]["doubleValue"], 1.0, "{fam}");
        assert_eq!(pts[1]["gaugeValue"]["doubleValue"], 0.0, "{fam}");
        assert_eq!(pts[0]["timestamp"], "1970-01-01T00:01:00Z");
        req.metric = "errors".into();
        let fam = spm_family(&req, &rows);
        assert_eq!(
            fam["metrics"][0]["metricPoints"][0]["gaugeValue"]["doubleValue"],
            1.0
        );
        assert_eq!(fam["metrics"][0]["labels"][0]["value"], "a");
    }
}
