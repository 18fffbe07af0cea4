//! OTLP requests as the tests send them: one resource (its service name
//! and any other attributes) holding one scope of spans. The one builder
//! every scenario uses, instead of the literal spelled out in each file.

use proto::otlp::{
    ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, string_kv,
};

/// A request of `spans` from one resource with these `attributes`.
pub fn request_with(attributes: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A request of `spans` from `service`.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    request_with(vec![string_kv("service.name", service)], spans)
}

/// Trace `n` of a scenario: `tag` in the first byte keeps scenarios
/// apart, `n` in the last eight.
pub fn trace_id(tag: u8, n: u64) -> model::TraceId {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[8..].copy_from_slice(&n.to_be_bytes());
    model::TraceId::from_array(b)
}

/// `count` spans of trace `id`: span ids `[i; 8]`, names `op-i`, each
/// starting `i` ns after `start` and lasting 1 ms.
pub fn numbered_spans(id: model::TraceId, count: u8, start: u64) -> Vec<Span> {
    (1..=count)
        .map(|i| Span {
            trace_id: id.as_bytes().to_vec(),
            span_id: vec![i; 8],
            name: format!("op-{i}"),
            start_time_unix_nano: start + u64::from(i),
            end_time_unix_nano: start + u64::from(i) + 1_000_000,
            ..Default::default()
        })
        .collect()
}
