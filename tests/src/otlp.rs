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
