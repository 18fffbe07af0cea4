//! The RED-metrics tap: counts every received span *before* sampling, per
//! (service, operation, span kind, status), with a latency histogram of
//! fixed buckets, exposed on `/metrics`:
//!
//! - `meridian_spans_total{service,operation,span_kind,status_code}`
//! - `meridian_span_duration_seconds{…}` buckets 1 ms … 30 s:
//!   0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
//!
//! Cardinality is bounded: beyond `max_series` distinct label sets, spans
//! are counted under `operation="other"` (and `service="other"` when the
//! service is new too), and `meridian_red_series_folded_total` counts them.
//!
//! The same counts are aggregated per 10 s window ([`window`]); closed
//! windows are written to their own buffer by [`flush`] and forwarded to
//! the gateway (`metrics.proto`), so the gateway's RED figures cover every
//! span whatever the sampling keeps.

pub mod flush;
pub mod window;

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use proto::{metrics::WindowBatch, otlp::ExportTraceServiceRequest, view::TraceView};

/// What the tap reads of one span, decoded or viewed.
struct SpanFacts<'a> {
    service: Option<&'a str>,
    name: &'a str,
    kind: i32,
    status: Option<i32>,
    start: u64,
    end: u64,
    trace_id: &'a [u8],
}

pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedLabels {
    pub service: String,
    pub operation: String,
    pub span_kind: &'static str,
    pub status_code: &'static str,
}

/// The tap; cheap to clone.
#[derive(Debug, Clone)]
pub struct RedTap {
    calls: Family<RedLabels, Counter>,
    latency: Family<RedLabels, Histogram, fn() -> Histogram>,
    folded: Counter,
    seen: std::sync::Arc<Mutex<HashSet<(String, String)>>>,
    max_series: usize,
    /// Open 10 s windows (see [`window`]).
    windows: std::sync::Arc<Mutex<window::Windows>>,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

fn kind(k: i32) -> &'static str {
    match k {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn status(code: Option<i32>) -> &'static str {
    match code {
        Some(1) => "OK",
        Some(2) => "ERROR",
        _ => "UNSET",
    }
}

impl RedTap {
    pub fn register(registry: &mut Registry, max_series: usize) -> Self {
        let tap = Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(histogram as fn() -> Histogram),
            folded: Counter::default(),
            seen: Default::default(),
            max_series,
            windows: Default::default(),
        };
        registry.register(
            "meridian_spans",
            "Spans received, before sampling, by service, operation, kind and status",
            tap.calls.clone(),
        );
        registry.register(
            "meridian_span_duration_seconds",
            "Span durations, before sampling",
            tap.latency.clone(),
        );
        registry.register(
            "meridian_red_series_folded",
            "Spans counted under operation=\"other\" because the series limit was reached",
            tap.folded.clone(),
        );
        tap
    }

    /// Counts every span of `req`. Spans are grouped per series first, so
    /// the shared families and the window are touched once per series and
    /// request, not once per span.
    pub fn observe(&self, req: &ExportTraceServiceRequest) {
        self.observe_at(req, telemetry::clock::unix_ms());
    }

    /// [`observe`](Self::observe) at a given time (the window it counts in).
    pub fn observe_at(&self, req: &ExportTraceServiceRequest, now_ms: i64) {
        let spans = req.resource_spans.iter().flat_map(|rs| {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| proto::otlp::string_attr(&r.attributes, model::SERVICE_ATTRIBUTE));
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .map(move |span| SpanFacts {
                    service,
                    name: &span.name,
                    kind: span.kind,
                    status: span.status.as_ref().map(|s| s.code),
                    start: span.start_time_unix_nano,
                    end: span.end_time_unix_nano,
                    trace_id: &span.trace_id,
                })
        });
        self.observe_spans(spans, now_ms);
    }

    /// [`observe`](Self::observe) for an encoded request, read through its
    /// view.
    pub fn observe_view(&self, view: &TraceView<'_>) {
        let spans = view.spans_with_service().map(|(service, s)| SpanFacts {
            service,
            name: s.name,
            kind: s.kind,
            status: s.status_code,
            start: s.start_time_unix_nano,
            end: s.end_time_unix_nano,
            trace_id: s.trace_id,
        });
        self.observe_spans(spans, telemetry::clock::unix_ms());
    }

    fn observe_spans<'a>(&self, spans: impl Iterator<Item = SpanFacts<'a>>, now_ms: i64) {
        type Key<'a> = (&'a str, &'a str, &'static str, &'static str);
        let mut local: HashMap<Key<'_>, Vec<window::Observation<'_>>> = HashMap::new();
        for s in spans {
            let key = (
                s.service.unwrap_or(model::UNKNOWN_SERVICE),
                s.name,
                kind(s.kind),
                status(s.status),
            );
            local.entry(key).or_default().push(window::Observation {
                duration_ns: s.end.saturating_sub(s.start),
                trace_id: s.trace_id,
            });
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for ((service, operation, span_kind, status_code), spans) in local {
            let n = spans.len() as u64;
            let (service, operation, folded) = self.series(service, operation, n);
            let labels = RedLabels {
                service,
                operation,
                span_kind,
                status_code,
            };
            self.calls.get_or_create(&labels).inc_by(n);
            let h = self.latency.get_or_create(&labels);
            for s in &spans {
                h.observe(s.duration_ns as f64 / 1e9);
            }
            let RedLabels {
                service, operation, ..
            } = labels;
            windows.add(
                now_ms,
                (service, operation, span_kind, status_code),
                &spans,
                if folded { n } else { 0 },
            );
        }
    }

    /// The closed windows (every window when `all`), as one wire batch.
    pub fn take_closed(&self, now_ms: i64, all: bool, epoch: u64) -> Option<WindowBatch> {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_closed(now_ms, all, epoch)
    }

    /// The (service, operation) labels to count under, folding new series
    /// beyond the limit.
    fn series(&self, service: &str, operation: &str, spans: u64) -> (String, String, bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (service.to_owned(), operation.to_owned());
        if seen.contains(&key) {
            return (key.0, key.1, false);
        }
        if seen.len() < self.max_series {
            seen.insert(key.clone());
            return (key.0, key.1, false);
        }
        self.folded.inc_by(spans);
        let service_known = seen.iter().any(|(s, _)| s == service);
        (
            if service_known {
                service.to_owned()
            } else {
                model::red::OTHER.to_owned()
            },
            model::red::OTHER.to_owned(),
            true,
        )
    }

    /// Spans counted for (service, operation), any kind and status.
    pub fn count(&self, service: &str, operation: &str) -> u64 {
        let mut n = 0;
        for k in [
            "internal",
            "server",
            "client",
            "producer",
            "consumer",
            "unspecified",
        ] {
            for s in ["OK", "ERROR", "UNSET"] {
                n += self
                    .calls
                    .get_or_create(&RedLabels {
                        service: service.into(),
                        operation: operation.into(),
                        span_kind: k,
                        status_code: s,
                    })
                    .get();
            }
        }
        n
    }

    pub fn folded(&self) -> u64 {
        self.folded.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::otlp::{ResourceSpans, ScopeSpans, Span, Status};

    fn req(service: &str, ops: &[&str]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(proto::otlp::Resource {
                    attributes: vec![proto::otlp::string_kv("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: ops
                        .iter()
                        .map(|o| Span {
                            name: (*o).into(),
                            kind: 2,
                            end_time_unix_nano: 3_000_000,
                            status: Some(Status {
                                code: 2,
                                message: String::new(),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn counts_and_folds_beyond_the_limit() {
        let mut r = Registry::default();
        let tap = RedTap::register(&mut r, 2);
        tap.observe(&req("a", &["x", "x", "y"]));
        tap.observe(&req("a", &["z"]));
        tap.observe(&req("b", &["q"]));
        assert_eq!(tap.count("a", "x"), 2);
        assert_eq!(tap.count("a", "y"), 1);
        assert_eq!(
            tap.count("a", "other"),
            1,
            "a/z folded under a known service"
        );
        assert_eq!(tap.count("other", "other"), 1, "b/q folded entirely");
        assert_eq!(tap.folded(), 2);
        let text = telemetry::metrics::render(&r);
        assert!(text.contains("meridian_spans_total{service=\"a\",operation=\"x\",span_kind=\"server\",status_code=\"ERROR\"} 2"), "{text}");
        assert!(text.contains("meridian_span_duration_seconds_bucket{le=\"0.005\",service=\"a\",operation=\"x\",span_kind=\"server\",status_code=\"ERROR\"} 2"), "{text}");
    }
}
