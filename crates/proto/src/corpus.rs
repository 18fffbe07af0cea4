//! A synthetic, realistic span corpus for benchmarks: HTTP server spans
//! (≈264 B encoded each) in 8-span traces under one resource per request.
//! Deterministic for a given seed.

use prost::Message;

use crate::otlp::{
    AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
    Status, any_value, string_kv,
};

/// Spans per trace in the corpus.
pub const TRACE_SPANS: usize = 8;

const ROUTES: [&str; 4] = ["/api/cart", "/api/checkout", "/api/items/{id}", "/healthz"];

/// Generates requests; every call continues the sequence.
#[derive(Debug, Clone)]
pub struct Generator {
    state: u64,
    spans: u64,
}

fn kv_int(key: &str, v: i64) -> KeyValue {
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
        // xorshift64
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
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
