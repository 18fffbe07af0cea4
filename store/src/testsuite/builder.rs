//! Test data for the conformance suite.

use std::sync::Arc;

use model::{
    AttrValue, ClusterId, Event, KeyValue, Link, Resource, Span, SpanId, SpanKind, StatusCode,
    TraceId,
};

/// 2023-11-14T22:13:20Z in ns: a fixed base time.
pub const T0: u64 = 1_700_000_000_000_000_000;
pub const MS: u64 = 1_000_000;

pub fn trace_id(n: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0x5a;
    b[8..].copy_from_slice(&n.to_be_bytes());
    TraceId::from_array(b)
}

pub fn span_id(n: u64) -> SpanId {
    SpanId::from_array((n | 1 << 62).to_be_bytes())
}

pub fn resource(service: &str, cluster: &str) -> Arc<Resource> {
    Arc::new(Resource {
        service_name: service.to_owned(),
        attributes: vec![
            KeyValue::string("k8s.cluster.name", cluster),
            KeyValue::string("k8s.namespace.name", "shop"),
        ],
    })
}

/// A span builder with sensible defaults.
#[derive(Debug, Clone)]
pub struct SpanBuilder(Span);

impl SpanBuilder {
    pub fn new(trace: u64, span: u64, service: &str) -> Self {
        Self(Span {
            trace_id: trace_id(trace),
            span_id: span_id(span),
            parent_span_id: None,
            name: "op".to_owned(),
            kind: SpanKind::Server,
            start_unix_nano: T0,
            end_unix_nano: T0 + 10 * MS,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            flags: 0,
            trace_state: String::new(),
            scope_name: String::new(),
            scope_version: String::new(),
            cluster: ClusterId::new("east").expect("valid"),
            resource: resource(service, "east"),
        })
    }
    pub fn name(mut self, n: &str) -> Self {
        self.0.name = n.to_owned();
        self
    }
    pub fn kind(mut self, k: SpanKind) -> Self {
        self.0.kind = k;
        self
    }
    pub fn parent(mut self, p: u64) -> Self {
        self.0.parent_span_id = Some(span_id(p));
        self
    }
    /// Start offset from T0 and duration, in ms.
    pub fn at(mut self, start_ms: u64, dur_ms: u64) -> Self {
        self.0.start_unix_nano = T0 + start_ms * MS;
        self.0.end_unix_nano = self.0.start_unix_nano + dur_ms * MS;
        self
    }
    /// Starts at an absolute time (Unix nanoseconds), lasting `dur_ms`.
    pub fn at_unix(mut self, start_unix_nano: u64, dur_ms: u64) -> Self {
        self.0.start_unix_nano = start_unix_nano;
        self.0.end_unix_nano = start_unix_nano + dur_ms * MS;
        self
    }

    pub fn error(mut self, msg: &str) -> Self {
        self.0.status_code = StatusCode::Error;
        self.0.status_message = msg.to_owned();
        self
    }
    pub fn attr(mut self, k: &str, v: AttrValue) -> Self {
        self.0.attributes.push(KeyValue::new(k, v));
        self
    }
    pub fn event(mut self, name: &str, attrs: Vec<KeyValue>) -> Self {
        self.0.events.push(Event {
            time_unix_nano: self.0.start_unix_nano + 1,
            name: name.to_owned(),
            attributes: attrs,
        });
        self
    }
    pub fn link(mut self, trace: u64, span: u64) -> Self {
        self.0.links.push(Link {
            trace_id: trace_id(trace),
            span_id: span_id(span),
            attributes: vec![KeyValue::string("link.kind", "batch")],
        });
        self
    }
    pub fn cluster(mut self, c: &str) -> Self {
        self.0.cluster = ClusterId::new(c).expect("valid cluster");
        self.0.resource = resource(&self.0.resource.service_name, c);
        self
    }
    pub fn build(self) -> Span {
        self.0
    }
}

/// A query without filters over T0 ± 1 h, limit 100.
pub fn any_query() -> model::TraceQuery {
    model::TraceQuery {
        service: None,
        operation: None,
        span_kind: None,
        tags: Vec::new(),
        start_min_unix_nano: T0 - 3_600_000 * MS,
        start_max_unix_nano: T0 + 3_600_000 * MS,
        duration_min_nanos: None,
        duration_max_nanos: None,
        limit: 100,
        scope: model::access::Scope::All,
    }
}
