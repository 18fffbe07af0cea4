//! Trace search: tag filters, the query, a trace as returned, and the tag
//! matching rule.

use crate::{Span, SpanKind, TraceId, access::Scope};

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
///
/// `scope` is the caller's: the matching span must belong to a cluster in
/// it. Backends apply it in the query itself, before the limit, so a trace
/// with no span in scope is never counted, ranked or returned.
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
    pub scope: Scope,
}

/// All stored spans of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
}

impl TraceQuery {
    /// Every trace with a span starting in `[start, end]` (unix ns,
    /// inclusive): no filter, no limit (0: the backend's default), no
    /// scope cut; callers narrow it.
    pub fn window(start: u64, end: u64) -> Self {
        Self {
            service: None,
            operation: None,
            span_kind: None,
            tags: Vec::new(),
            start_min_unix_nano: start,
            start_max_unix_nano: end,
            duration_min_nanos: None,
            duration_max_nanos: None,
            limit: 0,
            scope: Scope::All,
        }
    }

    /// Whether one span satisfies every filter of the query: the time
    /// window (inclusive), service, operation, kind, durations, tags, and
    /// whether its cluster is in the query's scope.
    /// Backends whose indexes only narrow candidates confirm with this.
    pub fn matches_span(&self, span: &Span) -> bool {
        if !self.scope.allows_id(&span.cluster) {
            return false;
        }
        let start = span.start_unix_nano;
        if start < self.start_min_unix_nano || start > self.start_max_unix_nano {
            return false;
        }
        if self
            .service
            .as_deref()
            .is_some_and(|s| s != span.service_name())
            || self.operation.as_deref().is_some_and(|o| o != span.name)
            || self.span_kind.is_some_and(|k| k != span.kind)
        {
            return false;
        }
        let duration = span.duration_nanos();
        if self.duration_min_nanos.is_some_and(|m| duration < m)
            || self.duration_max_nanos.is_some_and(|m| duration > m)
        {
            return false;
        }
        self.tags
            .iter()
            .all(|t| span_has_tag(span, &t.key, &t.value))
    }
}

/// Whether `span` carries `key=value` as a span, resource or event
/// attribute (in its string form), or as one of the synthetic tags Jaeger
/// shows: `error=true`, `span.kind`, `otel.status_code`.
pub fn span_has_tag(span: &Span, key: &str, value: &str) -> bool {
    let attr = span
        .attributes
        .iter()
        .chain(&span.resource.attributes)
        .chain(span.events.iter().flat_map(|e| &e.attributes))
        .any(|kv| kv.key == key && kv.value.to_search_string() == value);
    attr || match key {
        "error" => value == "true" && span.is_error(),
        "span.kind" => span.kind.jaeger_name() == Some(value),
        "otel.status_code" => match span.status_code {
            crate::StatusCode::Error => value == "ERROR",
            crate::StatusCode::Ok => value == "OK",
            crate::StatusCode::Unset => false,
        },
        _ => false,
    }
}
