//! A synthetic, realistic span corpus for benchmarks: HTTP server spans
//! (≈264 B encoded each) in 8-span traces under one resource per request.
//! Deterministic for a given seed.

use prost::Message;

use crate::otlp::{
    AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
    Status, any_value, string_kv,
};

/// The next value of a xorshift64 sequence (deterministic, not for
/// anything secret); `state` must not be 0.
pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Spans per trace in the corpus.
pub const TRACE_SPANS: usize = 8;

const ROUTES: [&str; 4] = ["/api/cart", "/api/checkout", "/api/items/{id}", "/healthz"];

/// Generates requests; every call continues the sequence.
#[derive(Debug, Clone)]
pub struct Generator {
    state: u64,
    spans: u64,
}

/// An int attribute (shared with [`crate::corpus_prod`]).
pub(crate) fn kv_int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.max(1),
            spans: 0,
        }
    }

    fn next(&mut self) -> u64 {
        xorshift(&mut self.state)
    }

    /// One request of `spans` spans (whole traces of 8 where it divides).
    pub fn request(&mut self, spans: usize) -> ExportTraceServiceRequest {
        let mut out = Vec::with_capacity(spans);
        let mut trace = [0u8; 16];
        for i in 0..spans {
            if i % TRACE_SPANS == 0 {
                trace[..8].copy_from_slice(&self.next().to_be_bytes());
                trace[8..].copy_from_slice(&self.next().to_be_bytes());
            }
            self.spans += 1;
            let start = 1_700_000_000_000_000_000 + self.spans * 1_000;
            let route = ROUTES[i % ROUTES.len()];
            let error = self.spans.is_multiple_of(50);
            out.push(Span {
                trace_id: trace.to_vec(),
                span_id: self.next().to_be_bytes().to_vec(),
                parent_span_id: if i % TRACE_SPANS == 0 {
                    Vec::new()
                } else {
                    self.next().to_be_bytes().to_vec()
                },
                name: format!("GET {route}"),
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_000_000 + self.next() % 50_000_000,
                attributes: vec![
                    string_kv("http.request.method", "GET"),
                    string_kv("http.route", route),
                    kv_int("http.response.status_code", if error { 500 } else { 200 }),
                    string_kv("server.address", "frontend.shop.svc.cluster.local"),
                    string_kv("user_agent.original", "loadgen/1.0"),
                ],
                status: Some(Status {
                    code: if error { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            });
        }
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", "frontend"),
                        string_kv("k8s.namespace.name", "shop"),
                        string_kv("k8s.pod.name", "frontend-7d9c6b5f4-x2x9z"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: out,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// Total encoded bytes of the spans alone in `req`.
pub fn span_bytes(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(Message::encoded_len)
        .sum()
}

/// The storage benchmarks' corpus: 10-span traces across 10 services (one
/// resource per service in each request), 5 operations per service, 10
/// attributes per span (≈264 B encoded), ids unique across the run.
/// Trace starts advance evenly from `start_unix_nano` by `step_nanos`.
#[derive(Debug, Clone)]
pub struct StoreCorpus {
    state: u64,
    next_start: u64,
    step_nanos: u64,
}

/// Services in [`StoreCorpus`].
pub const STORE_SERVICES: usize = 10;
/// Operations per service in [`StoreCorpus`].
pub const STORE_OPERATIONS: usize = 5;

const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
const REGIONS: [&str; 3] = ["eu", "us", "ap"];

impl StoreCorpus {
    pub fn new(seed: u64, start_unix_nano: u64, step_nanos: u64) -> Self {
        Self {
            state: seed.max(1),
            next_start: start_unix_nano,
            step_nanos,
        }
    }

    fn next(&mut self) -> u64 {
        xorshift(&mut self.state)
    }

    /// One request of `traces` whole traces (10 spans each).
    pub fn request(&mut self, traces: usize) -> ExportTraceServiceRequest {
        let mut per_service: Vec<Vec<Span>> = (0..STORE_SERVICES)
            .map(|_| Vec::with_capacity(traces))
            .collect();
        for _ in 0..traces {
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&self.next().to_be_bytes());
            trace[8..].copy_from_slice(&self.next().to_be_bytes());
            let start = self.next_start;
            self.next_start += self.step_nanos;
            let mut parent = Vec::new();
            let total = 5_000_000 + self.next() % 400_000_000;
            for (k, spans) in per_service.iter_mut().enumerate() {
                let r = self.next();
                let op = (r % STORE_OPERATIONS as u64) as usize;
                let error = r.is_multiple_of(97);
                let span_id = self.next().to_be_bytes().to_vec();
                let begin = start + k as u64 * 1_000_000;
                let dur = total / (k as u64 + 1);
                spans.push(Span {
                    trace_id: trace.to_vec(),
                    span_id: span_id.clone(),
                    parent_span_id: parent.clone(),
                    name: format!("GET /r{op}"),
                    kind: if k % 2 == 0 { 2 } else { 3 },
                    start_time_unix_nano: begin,
                    end_time_unix_nano: begin + dur,
                    attributes: vec![
                        string_kv(
                            "http.method",
                            if r.is_multiple_of(3) { "POST" } else { "GET" },
                        ),
                        string_kv("http.route", &format!("/r{op}")),
                        kv_int("http.status_code", if error { 500 } else { 200 }),
                        string_kv("peer.service", &format!("s{}", k + 1)),
                        kv_int("net.port", (r >> 8) as i64 % 60_000),
                        string_kv("app.tier", TIERS[(r >> 20) as usize % 3]),
                        string_kv("region", REGIONS[(r >> 24) as usize % 3]),
                        kv_int("app.items", (r >> 28) as i64 % 20),
                        kv_int("thread.id", ((r >> 32) % 8) as i64),
                        string_kv("app.req", &format!("{:04x}", (r >> 16) as u16)),
                    ],
                    status: Some(Status {
                        code: if error { 2 } else { 0 },
                        message: String::new(),
                    }),
                    ..Default::default()
                });
                parent = span_id;
            }
        }
        ExportTraceServiceRequest {
            resource_spans: per_service
                .into_iter()
                .enumerate()
                .map(|(k, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            string_kv("service.name", &format!("svc-{k}")),
                            string_kv("k8s.namespace.name", "shop"),
                            string_kv("k8s.pod.name", &format!("svc-{k}-7d9c6b5f4-x2x9z")),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod store_corpus_tests {
    use super::*;

    #[test]
    fn spans_are_unique_and_about_264_bytes() {
        let mut c = StoreCorpus::new(7, 1_000, 10);
        let a = c.request(100);
        let b = c.request(100);
        let spans = |r: &ExportTraceServiceRequest| -> Vec<Vec<u8>> {
            r.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.span_id.clone())
                .collect()
        };
        let mut ids = spans(&a);
        ids.extend(spans(&b));
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((n, ids.len()), (2_000, 2_000));
        let avg = span_bytes(&a) / 1_000;
        assert!((250..280).contains(&avg), "{avg} B per span");
        eprintln!("{avg} B per span");
        assert_eq!(a.resource_spans.len(), STORE_SERVICES);
    }
}
