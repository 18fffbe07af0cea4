//! What a firing alert's notification says about why (issue 22): the
//! leader runs `explain` ([`query::explain`]) for the rule's series over
//! the window that fired it against the window just before, and the
//! notification carries the top [`TOP_DIMENSIONS`] dimensions, the
//! largest latency delta (a service's self time or a gap between
//! clusters) and a link to the same explanation.
//!
//! The selection is the rule's service (and operation, cluster) in the
//! firing window — the rule's window ending [`EVAL_LAG_MS`] before it
//! fired, plus the 10 s of its last RED window, whose spans it counted —
//! narrowed for what the rule watches: an `error_ratio` rule
//! selects the traces with an error span of the service, a latency rule
//! (`p50_ms`, `p95_ms`, `p99_ms` above a threshold) those whose span of
//! the service took at least the threshold. The baseline is the
//! service's traces in the previous window of the same length. A
//! `cluster` selector narrows both sides to that cluster (a
//! `k8s.cluster.name` tag; `baselineQ` with the `cluster` intrinsic). Rate and
//! anomaly rules get no explanation (their threshold is not a duration).
//! An explanation that fails or finds nothing leaves the notification as
//! it was; it never delays it beyond [`DEADLINE`].

use std::time::Duration;

use control_state::alert::{
    AlertStatus,
    rule::{Condition, Metric, Op},
};
use model::access::Scope;
use serde::Serialize;
use serde_json::{Value, json};
use store::SpanStore;

use super::runner::EVAL_LAG_MS;

/// Dimensions a notification names.
pub const TOP_DIMENSIONS: usize = 3;
/// Traces read per side.
pub const PER_SIDE: usize = 1_000;
/// How long the explanation may take before the notification goes without.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// One named dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Named {
    pub key: String,
    pub value: String,
    pub selection_share: f64,
    pub baseline_share: f64,
    pub score: f64,
}

/// The largest latency delta: a (service, cluster) or a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopDelta {
    /// `service@cluster` or `fromCluster → toCluster`.
    pub what: String,
    /// `self` or `gap`.
    pub kind: &'static str,
    pub delta_ms: f64,
}

/// What a notification says about why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub dimensions: Vec<Named>,
    pub latency: Option<TopDelta>,
    /// The UI's `/explain` page with the same parameters (it shows
    /// `/api/v1/explain`'s answer for them).
    pub url: String,
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A TraceQL string literal.
fn traceql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The explain query string for a firing `c` (pure), `None` for rules
/// without one. A cluster selector narrows the selection (a
/// `k8s.cluster.name` tag) and the baseline (`baselineQ`) to its cluster.
pub fn query_string(c: &Condition, status: &AlertStatus) -> Option<String> {
    let service = c.service.as_deref()?;
    if c.anomaly || c.op != Op::Above {
        return None;
    }
    // A cluster selector narrows both sides to that cluster's spans.
    let mut tags = serde_json::Map::new();
    let narrow = match c.metric {
        Metric::ErrorRatio => {
            tags.insert("error".into(), json!("true"));
            String::new()
        }
        Metric::P50Ms | Metric::P95Ms | Metric::P99Ms => {
            format!("&minDuration={}ms", c.threshold.max(0.0).floor() as u64)
        }
        Metric::Rate => return None,
    };
    if let Some(cluster) = &c.cluster {
        tags.insert("k8s.cluster.name".into(), json!(cluster));
    }
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!("&tags={}", enc(&Value::Object(tags).to_string()))
    };
    // The rule read the 10 s RED windows that start in
    // [eval_end - window, eval_end): their spans end up to one RED window
    // later, so the selection reaches that far (`end` is inclusive).
    let eval_end = status.fired_at_ms - EVAL_LAG_MS;
    let start_ms = eval_end - c.window_ms;
    let end_ms = eval_end + crate::red::keys::Resolution::S10.width_ms() - 1;
    let (b_start, b_end) = (start_ms - c.window_ms, start_ms - 1);
    if b_start < 0 {
        return None;
    }
    let us = |ms: i64| ms * 1_000;
    let mut q = format!("service={}", enc(service));
    if let Some(op) = &c.operation {
        q.push_str(&format!("&operation={}", enc(op)));
    }
    if let Some(k) = &c.span_kind {
        q.push_str(&format!("&spanKind={}", enc(k)));
    }
    q.push_str(&format!(
        "{tags}{narrow}&start={}&end={}&baselineStart={}&baselineEnd={}&limit={PER_SIDE}",
        us(start_ms),
        us(end_ms),
        us(b_start),
        us(b_end)
    ));
    if let Some(cluster) = &c.cluster {
        let op = c
            .operation
            .as_ref()
            .map(|o| format!(" && name = {}", traceql_string(o)))
            .unwrap_or_default();
        let baseline = format!(
            "{{ resource.service.name = {} && cluster = {}{op} }}",
            traceql_string(service),
            traceql_string(cluster)
        );
        q.push_str(&format!("&baselineQ={}", enc(&baseline)));
    }
    Some(q)
}

/// The summary of an answer (pure).
pub fn summarize(answer: &query::explain::Answer, url: String) -> Option<Summary> {
    let e = &answer.explanation;
    if e.selection.traces == 0 || e.baseline.traces == 0 {
        return None;
    }
    let dimensions: Vec<Named> = e
        .dimensions
        .iter()
        .filter(|d| d.score > 0.0)
        .take(TOP_DIMENSIONS)
        .map(|d| Named {
            key: d.key.clone(),
            value: d.value.clone(),
            selection_share: d.selection_share,
            baseline_share: d.baseline_share,
            score: d.score,
        })
        .collect();
    let service = e.latency.first().map(|l| TopDelta {
        what: format!("{}@{}", l.service, l.cluster),
        kind: "self",
        delta_ms: l.delta_ms,
    });
    let gap = e.gaps.first().map(|g| TopDelta {
        what: format!("{} → {}", g.from_cluster, g.to_cluster),
        kind: "gap",
        delta_ms: g.delta_ms,
    });
    let latency = [service, gap]
        .into_iter()
        .flatten()
        .filter(|d| d.delta_ms > 0.0)
        .max_by(|a, b| a.delta_ms.total_cmp(&b.delta_ms));
    Some(Summary {
        dimensions,
        latency,
        url,
    })
}

/// Runs the explanation for a firing `c` over `store`, or `None`.
pub async fn explain(
    store: &dyn SpanStore,
    c: &Condition,
    status: &AlertStatus,
    ui: &str,
    now_nanos: u64,
) -> Option<Summary> {
    let qs = query_string(c, status)?;
    let req =
        match query::explain::params::request(Some(&qs), now_nanos, &query::QueryLimits::default())
        {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(%error, "alert explanation: the request was refused");
                return None;
            }
        };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    match query::explain::run::run(store, &req, &Scope::All, deadline).await {
        Ok(answer) => summarize(
            &answer,
            format!("{}/explain?{qs}", ui.trim_end_matches('/')),
        ),
        Err(error) => {
            tracing::warn!(%error, "alert explanation failed; notifying without it");
            None
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Alertmanager annotations (strings): `explain_top`, `explain_latency`,
/// `explain_url`.
pub fn annotations(s: &Summary) -> Vec<(&'static str, String)> {
    let top: Vec<String> = s
        .dimensions
        .iter()
        .map(|d| {
            format!(
                "{}={} ({} vs {}, score {:.1})",
                d.key,
                d.value,
                pct(d.selection_share),
                pct(d.baseline_share),
                d.score
            )
        })
        .collect();
    let mut out = vec![
        ("explain_top", top.join("; ")),
        ("explain_url", s.url.clone()),
    ];
    if let Some(l) = &s.latency {
        out.push((
            "explain_latency",
            format!("{} {} {:+.1} ms", l.kind, l.what, l.delta_ms),
        ));
    }
    out
}

/// The JSON webhook's `explain` object.
pub fn json(s: &Summary) -> Value {
    json!({"dimensions": s.dimensions, "latency": s.latency, "url": s.url})
}

#[cfg(test)]
mod tests {
    use control_state::alert::rule;

    use super::*;

    fn firing_at(ms: i64) -> AlertStatus {
        AlertStatus {
            fired_at_ms: ms,
            ..AlertStatus::default()
        }
    }

    #[test]
    fn an_error_rule_selects_its_error_traces_against_the_window_before() {
        let c = rule::parse(r#"error_ratio{service="cart"}[1m] > 0.1"#).unwrap();
        let q = query_string(&c, &firing_at(1_000_000 + EVAL_LAG_MS)).unwrap();
        assert_eq!(
            q,
            "service=cart&tags=%7B%22error%22%3A%22true%22%7D&start=940000000&end=1009999000\
             &baselineStart=880000000&baselineEnd=939999000&limit=1000"
        );
        let limits = query::QueryLimits::default();
        let req = query::explain::params::request(Some(&q), 2_000_000_000_000, &limits).unwrap();
        assert!(!req.baseline.exclude_selection);
        assert!(req.baseline.query.is_none());
        // A cluster selector narrows both sides to its cluster.
        let c = rule::parse(r#"error_ratio{cluster="us-east",service="cart"}[1m] > 0.1"#).unwrap();
        let q = query_string(&c, &firing_at(1_000_000 + EVAL_LAG_MS)).unwrap();
        let req = query::explain::params::request(Some(&q), 2_000_000_000_000, &limits).unwrap();
        let tags = &req.selection.store_query().tags;
        assert!(
            tags.iter()
                .any(|t| t.key == "k8s.cluster.name" && t.value == "us-east"),
            "{tags:?}"
        );
        assert!(tags.iter().any(|t| t.key == "error" && t.value == "true"));
        assert!(req.baseline.query.is_some(), "{q}");
        assert_eq!(traceql_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn a_latency_rule_selects_by_its_threshold_and_others_get_nothing() {
        let c = rule::parse(r#"p99_ms{service="web",operation="GET /"}[5m] > 250"#).unwrap();
        let q = query_string(&c, &firing_at(10_000_000)).unwrap();
        assert!(
            q.starts_with("service=web&operation=GET+%2F&minDuration=250ms&"),
            "{q}"
        );
        for expr in [
            r#"rate{service="web"}[1m] > 5"#,
            r#"p99_ms{service="web"}[1m] < 5"#,
            r#"anomaly(p99_ms{service="web"}[1m]) > 3"#,
            "p99_ms[1m] > 5",
        ] {
            let c = rule::parse(expr).unwrap();
            assert_eq!(query_string(&c, &firing_at(10_000_000)), None, "{expr}");
        }
    }

    #[test]
    fn the_annotations_name_the_top_dimensions_and_the_delta() {
        let s = Summary {
            dimensions: vec![Named {
                key: "resource.service.version".into(),
                value: "1.4.2".into(),
                selection_share: 1.0,
                baseline_share: 0.13,
                score: 9.04,
            }],
            latency: Some(TopDelta {
                what: "us-east → ap-south".into(),
                kind: "gap",
                delta_ms: 300.04,
            }),
            url: "http://ui/explain?service=a".into(),
        };
        let a = annotations(&s);
        assert_eq!(
            a[0].1,
            "resource.service.version=1.4.2 (100% vs 13%, score 9.0)"
        );
        assert_eq!(a[2].1, "gap us-east → ap-south +300.0 ms");
        assert_eq!(json(&s)["dimensions"][0]["selectionShare"], 1.0);
    }
}
