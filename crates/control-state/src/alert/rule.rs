//! Alert rule expressions (pure). A rule is stored as its text (`expr`) and
//! a `for` duration; this parses and validates the text:
//!
//! ```text
//! METRIC{LABEL="v",…}[WINDOW] (>|<) NUMBER
//! anomaly(METRIC{LABEL="v",…}[WINDOW]) > K
//! ```
//!
//! - METRIC: `error_ratio` (0–1), `rate` (calls/s), `p50_ms`, `p95_ms`,
//!   `p99_ms`, over the RED series the labels select (`cluster`,
//!   `service`, `operation`, `span_kind`; absent = all), merged over
//!   `WINDOW` (`30s`, `5m`, `1h`; default `1m`) ending now.
//! - `anomaly(…) > K`: the last WINDOW's value departs from its own
//!   baseline by more than K standard deviations (see the metrics-alerts crate's `alerts::anomaly`).

use serde::Serialize;

use model::red::Selector;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    ErrorRatio,
    Rate,
    P50Ms,
    P95Ms,
    P99Ms,
}

impl Metric {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "error_ratio" => Metric::ErrorRatio,
            "rate" => Metric::Rate,
            "p50_ms" => Metric::P50Ms,
            "p95_ms" => Metric::P95Ms,
            "p99_ms" => Metric::P99Ms,
            other => {
                return Err(format!(
                    "unknown metric {other:?}: one of error_ratio, rate, p50_ms, p95_ms, p99_ms"
                ));
            }
        })
    }

    /// The metric's value over an aggregate covering `window_ms`; `None`
    /// when it has no value (no calls).
    pub fn value(self, agg: &model::red::Aggregate, window_ms: i64) -> Option<f64> {
        match self {
            Metric::Rate => Some(agg.count as f64 * 1000.0 / window_ms.max(1) as f64),
            Metric::ErrorRatio => (agg.count > 0).then(|| agg.error_ratio()),
            Metric::P50Ms => agg.quantile_ms(0.5),
            Metric::P95Ms => agg.quantile_ms(0.95),
            Metric::P99Ms => agg.quantile_ms(0.99),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Above,
    Below,
}

/// A parsed rule condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub metric: Metric,
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub operation: Option<String>,
    pub span_kind: Option<String>,
    pub window_ms: i64,
    pub op: Op,
    pub threshold: f64,
    /// An anomaly rule: `threshold` is the band width in deviations.
    pub anomaly: bool,
}

impl Condition {
    pub fn selector(&self) -> Selector {
        Selector {
            cluster: self.cluster.clone(),
            services: self.service.clone().into_iter().collect(),
            operation: self.operation.clone(),
            span_kind: self.span_kind.clone(),
        }
    }

    /// Labels naming the series (for notifications and the UI link).
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        let mut l = Vec::new();
        for (k, v) in [
            ("cluster", &self.cluster),
            ("service", &self.service),
            ("operation", &self.operation),
            ("span_kind", &self.span_kind),
        ] {
            if let Some(v) = v {
                l.push((k, v.clone()));
            }
        }
        l
    }
}

fn duration_ms(s: &str) -> Result<i64, String> {
    let err = || format!("window {s:?}: write e.g. 30s, 5m or 1h");
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?);
    let n: i64 = n.parse().map_err(|_| err())?;
    let ms = match unit {
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(err()),
    };
    if !(10_000..=24 * 3_600_000).contains(&ms) {
        return Err(format!("window {s:?}: between 10s and 24h"));
    }
    Ok(ms)
}

/// Parses a rule expression.
pub fn parse(expr: &str) -> Result<Condition, String> {
    let e = expr.trim();
    let (inner, anomaly, rest) = if let Some(after) = e.strip_prefix("anomaly(") {
        let close = after
            .rfind(')')
            .ok_or("anomaly( without its closing parenthesis")?;
        (&after[..close], true, after[close + 1..].trim())
    } else {
        let at = e
            .find(['>', '<'])
            .ok_or("a comparison is required: METRIC{…} > N or < N")?;
        (&e[..at], false, e[at..].trim())
    };
    let (op, num) = if let Some(n) = rest.strip_prefix('>') {
        (Op::Above, n)
    } else if let Some(n) = rest.strip_prefix('<') {
        (Op::Below, n)
    } else {
        return Err("a comparison is required: > N or < N".into());
    };
    let threshold: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a number", num.trim()))?;
    if !threshold.is_finite() {
        return Err("the threshold must be finite".into());
    }
    if anomaly && (op != Op::Above || threshold <= 0.0) {
        return Err("anomaly(…) takes `> K` with K > 0 standard deviations".into());
    }
    let inner = inner.trim();
    let (head, window_ms) = match inner.strip_suffix(']') {
        Some(x) => {
            let open = x.rfind('[').ok_or("']' without '['")?;
            (&x[..open], duration_ms(&x[open + 1..])?)
        }
        None => (inner, 60_000),
    };
    let (metric, labels) = match head.find('{') {
        Some(i) => (
            &head[..i],
            head[i + 1..]
                .trim_end()
                .strip_suffix('}')
                .ok_or("'{' without '}'")?,
        ),
        None => (head, ""),
    };
    let mut c = Condition {
        metric: Metric::parse(metric.trim())?,
        cluster: None,
        service: None,
        operation: None,
        span_kind: None,
        window_ms,
        op,
        threshold,
        anomaly,
    };
    for pair in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("label {pair:?}: write name=\"value\""))?;
        let v = v
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("label {pair:?}: quote the value"))?
            .to_owned();
        let slot = match k.trim() {
            "cluster" => &mut c.cluster,
            "service" => &mut c.service,
            "operation" => &mut c.operation,
            "span_kind" => &mut c.span_kind,
            other => {
                return Err(format!(
                    "unknown label {other:?}: cluster, service, operation or span_kind"
                ));
            }
        };
        *slot = Some(v);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_bad_ones_say_why() {
        let c =
            parse(r#"error_ratio{cluster="eu", service="checkout"}[5m] > 0.05"#).expect("valid");
        assert_eq!(c.metric, Metric::ErrorRatio);
        assert_eq!(c.service.as_deref(), Some("checkout"));
        assert_eq!(
            (c.window_ms, c.op, c.threshold, c.anomaly),
            (300_000, Op::Above, 0.05, false)
        );
        let c = parse("rate < 1").expect("valid");
        assert_eq!(
            (c.metric, c.op, c.window_ms),
            (Metric::Rate, Op::Below, 60_000)
        );
        let c = parse(r#"anomaly(p99_ms{service="a"}[1m]) > 3"#).expect("valid");
        assert!(c.anomaly);
        for bad in [
            "",
            "error_ratio",
            "latency > 3",
            "rate > x",
            r#"rate{pod="a"} > 1"#,
            "rate{service=a} > 1",
            "rate[7d] > 1",
            "anomaly(rate) < 3",
            "anomaly(rate > 3",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
