//! The RED series on the gateway's `/metrics`:
//!
//! - `meridian_red_calls_total{cluster,service,operation,span_kind,status_code}`
//! - `meridian_red_duration_seconds{…}` (histogram; buckets 1 ms … 30 s,
//!   the agent tap's, filled from the windows' sketches)
//! - `meridian_red_series_folded_total`: spans counted under
//!   `operation="other"` (and `service="other"` for a new service) because
//!   `prom_max_series` distinct (cluster, service, operation) were taken.
//!
//! Counts are what this gateway process received since it started (sum
//! them over the gateways); replays an agent sends again after a failed ack
//! are not counted twice on the same gateway (see `ingest`). The store's
//! figures (the query APIs) are exact; these are for scraping.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use model::red::{Aggregate, OTHER, SeriesKey};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter},
};

/// Histogram bucket bounds in seconds (as the agent tap's).
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    cluster: String,
    service: String,
    operation: String,
    span_kind: String,
    status_code: String,
}

#[derive(Debug, Default)]
struct Series {
    calls: u64,
    sum_s: f64,
    /// Per bucket (not cumulative), the last one is +Inf.
    buckets: [u64; BUCKETS.len() + 1],
}

#[derive(Debug, Default)]
struct Inner {
    series: HashMap<Labels, Series>,
    pairs: HashSet<(String, String, String)>,
    services: HashSet<(String, String)>,
    folded: u64,
}

/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct RedProm {
    inner: Arc<Mutex<Inner>>,
    max_series: usize,
}

impl RedProm {
    pub fn new(max_series: usize) -> Self {
        Self {
            inner: Arc::default(),
            max_series,
        }
    }

    pub fn add(&self, key: &SeriesKey, agg: &Aggregate) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (
            key.cluster.clone(),
            key.service.clone(),
            key.operation.clone(),
        );
        let (service, operation) = if inner.pairs.contains(&pair) {
            (key.service.clone(), key.operation.clone())
        } else if inner.pairs.len() < self.max_series {
            inner.pairs.insert(pair);
            inner
                .services
                .insert((key.cluster.clone(), key.service.clone()));
            (key.service.clone(), key.operation.clone())
        } else {
            inner.folded += agg.count;
            let known = inner
                .services
                .contains(&(key.cluster.clone(), key.service.clone()));
            (
                if known {
                    key.service.clone()
                } else {
                    OTHER.to_owned()
                },
                OTHER.to_owned(),
            )
        };
        let labels = Labels {
            cluster: key.cluster.clone(),
            service,
            operation,
            span_kind: key.span_kind.clone(),
            status_code: key.status_code.clone(),
        };
        let s = inner.series.entry(labels).or_default();
        s.calls += agg.count;
        s.sum_s += agg.duration_sum_ns as f64 / 1e9;
        let mut below = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            let cum = agg.sketch.count_le(le * 1e9);
            s.buckets[i] += cum.saturating_sub(below);
            below = below.max(cum);
        }
        s.buckets[BUCKETS.len()] += agg.count.saturating_sub(below);
    }

    pub fn folded(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).folded
    }

    /// Distinct label sets exported.
    pub fn series(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .series
            .len()
    }
}

impl Collector for RedProm {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut calls = encoder.encode_descriptor(
                "meridian_red_calls",
                "Spans counted by the agents before sampling, by cluster, service, operation, kind and status",
                None,
                MetricType::Counter,
            )?;
            for (labels, s) in &inner.series {
                ConstCounter::new(s.calls).encode(calls.encode_family(labels)?)?;
            }
        }
        {
            let mut hist = encoder.encode_descriptor(
                "meridian_red_duration_seconds",
                "Span durations counted by the agents before sampling",
                None,
                MetricType::Histogram,
            )?;
            for (labels, s) in &inner.series {
                let buckets: Vec<(f64, u64)> = BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::MAX])
                    .zip(s.buckets.iter().copied())
                    .collect();
                hist.encode_family(labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        s.sum_s, s.calls, &buckets, None,
                    )?;
            }
        }
        let folded = encoder.encode_descriptor(
            "meridian_red_series_folded",
            "Spans counted under operation=\"other\" on /metrics because the series limit was reached",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(inner.folded).encode(folded)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: &str) -> SeriesKey {
        SeriesKey {
            cluster: "eu".into(),
            service: "svc".into(),
            operation: op.into(),
            span_kind: "server".into(),
            status_code: "OK".into(),
        }
    }

    #[test]
    fn renders_counts_buckets_and_folds_beyond_the_limit() {
        let prom = RedProm::new(1);
        let mut agg = Aggregate::default();
        agg.observe(2_000_000, false, None);
        agg.observe(40_000_000_000, false, None);
        prom.add(&key("a"), &agg);
        prom.add(&key("b"), &agg);
        assert_eq!(prom.folded(), 2);
        let mut r = prometheus_client::registry::Registry::default();
        r.register_collector(Box::new(prom.clone()));
        let text = telemetry::metrics::render(&r);
        assert!(text.contains("meridian_red_calls_total{cluster=\"eu\",service=\"svc\",operation=\"a\",span_kind=\"server\",status_code=\"OK\"} 2"), "{text}");
        assert!(text.contains("operation=\"other\""), "{text}");
        assert!(text.contains("meridian_red_duration_seconds_bucket{le=\"0.0025\",cluster=\"eu\",service=\"svc\",operation=\"a\",span_kind=\"server\",status_code=\"OK\"} 1"), "{text}");
        assert!(
            text.contains("meridian_red_series_folded_total 2"),
            "{text}"
        );
    }
}
