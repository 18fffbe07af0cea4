use crate::{Span, SpanKind, TraceId};

/// One `key=value` filter. It matches a span whose attributes, resource
/// attributes or event attributes hold `key` with that string form, or the
/// synthetic tags Jaeger shows (`error`, `span.kind`, `otel.status_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: String,
}

/// A trace search. All filters must hold for one span; `limit` counts traces.
/// Times are nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub span_kind: Option<SpanKind>,
    pub tags: Vec<TagFilter>,
    pub start_min_unix_nano: u64,
    pub start_max_unix_nano: u64,
    pub duration_min_nanos: Option<u64>,
    pub duration_max_nanos: Option<u64>,
    pub limit: usize,
}

/// All stored spans of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
}
