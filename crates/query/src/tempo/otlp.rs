//! Stored spans back into OTLP, as Tempo answers a trace by id: protobuf
//! (`tempopb.Trace`, `tempopb.TraceByIDResponse`) and the JSON Tempo's
//! gogo `jsonpb` marshaller writes (camelCase names, base64 ids, enum
//! names, 64-bit integers as strings, zero values left out).

use base64::Engine as _;
use model::{AttrValue, KeyValue, Span};
use prost::Message;
use proto::otlp::{self, AnyValue, InstrumentationScope, ResourceSpans, ScopeSpans, any_value};
use serde_json::{Map, Value, json};

/// `tempopb.Trace`: `repeated ResourceSpans resourceSpans = 1`.
#[derive(Clone, PartialEq, Message)]
pub struct TempoTrace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDResponse`: the trace, metrics (left empty), the
/// partial status (`COMPLETE` = 0, `PARTIAL` = 1) and a message.
#[derive(Clone, PartialEq, Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TempoTrace>,
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

fn any(v: &AttrValue) -> AnyValue {
    let value = match v {
        AttrValue::Str(s) => any_value::Value::StringValue(s.clone()),
        AttrValue::Bool(b) => any_value::Value::BoolValue(*b),
        AttrValue::Int(i) => any_value::Value::IntValue(*i),
        AttrValue::Double(d) => any_value::Value::DoubleValue(*d),
        AttrValue::Bytes(b) => any_value::Value::BytesValue(b.clone()),
    };
    AnyValue { value: Some(value) }
}

fn kvs(list: &[KeyValue]) -> Vec<otlp::KeyValue> {
    list.iter()
        .map(|kv| otlp::KeyValue {
            key: kv.key.clone(),
            value: Some(any(&kv.value)),
            ..Default::default()
        })
        .collect()
}

/// One OTLP attribute.
pub fn key_value(key: &str, v: &AttrValue) -> otlp::KeyValue {
    otlp::KeyValue {
        key: key.to_owned(),
        value: Some(any(v)),
        ..Default::default()
    }
}

/// Groups spans by resource (consecutive spans sharing one) and scope.
pub fn resource_spans(spans: &[Span]) -> Vec<ResourceSpans> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut last: Option<&std::sync::Arc<model::Resource>> = None;
    for s in spans {
        let same =
            last.is_some_and(|r| std::sync::Arc::ptr_eq(r, &s.resource) || **r == *s.resource);
        if !same || out.is_empty() {
            let mut attributes = vec![otlp::string_kv(model::SERVICE_ATTRIBUTE, s.service_name())];
            attributes.extend(kvs(&s.resource.attributes));
            out.push(ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes,
                    ..Default::default()
                }),
                ..Default::default()
            });
            last = Some(&s.resource);
        }
        let Some(rs) = out.last_mut() else { continue };
        let scope_matches = rs.scope_spans.last().is_some_and(|ss| {
            ss.scope
                .as_ref()
                .is_some_and(|sc| sc.name == s.scope_name && sc.version == s.scope_version)
        });
        if !scope_matches {
            rs.scope_spans.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: s.scope_name.clone(),
                    version: s.scope_version.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if let Some(ss) = rs.scope_spans.last_mut() {
            ss.spans.push(span(s));
        }
    }
    out
}

fn span(s: &Span) -> otlp::Span {
    otlp::Span {
        trace_id: s.trace_id.as_bytes().to_vec(),
        span_id: s.span_id.as_bytes().to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s
            .parent_span_id
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        flags: s.flags,
        name: s.name.clone(),
        kind: s.kind.as_i32(),
        start_time_unix_nano: s.start_unix_nano,
        end_time_unix_nano: s.end_unix_nano,
        attributes: kvs(&s.attributes),
        events: s
            .events
            .iter()
            .map(|e| otlp::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: kvs(&e.attributes),
                ..Default::default()
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| otlp::span::Link {
                trace_id: l.trace_id.as_bytes().to_vec(),
                span_id: l.span_id.as_bytes().to_vec(),
                attributes: kvs(&l.attributes),
                ..Default::default()
            })
            .collect(),
        status: (s.status_code != model::StatusCode::Unset || !s.status_message.is_empty()).then(
            || otlp::Status {
                code: status_number(s.status_code),
                message: s.status_message.clone(),
            },
        ),
        ..Default::default()
    }
}

/// `TempoTrace` as protobuf bytes.
pub fn trace_bytes(spans: &[Span]) -> Vec<u8> {
    TempoTrace {
        resource_spans: resource_spans(spans),
    }
    .encode_to_vec()
}

/// `TraceByIdResponse` as protobuf bytes.
pub fn response_bytes(spans: &[Span], partial: bool, message: String) -> Vec<u8> {
    TraceByIdResponse {
        trace: Some(TempoTrace {
            resource_spans: resource_spans(spans),
        }),
        status: i32::from(partial),
        message,
    }
    .encode_to_vec()
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn put(m: &mut Map<String, Value>, key: &str, v: Value) {
    let empty = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
    };
    if !empty {
        m.insert(key.to_owned(), v);
    }
}

/// An OTLP `AnyValue` in jsonpb's form.
pub fn any_json(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!({"stringValue": s}),
        Some(any_value::Value::BoolValue(b)) => json!({"boolValue": b}),
        Some(any_value::Value::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(any_value::Value::DoubleValue(d)) => json!({"doubleValue": d}),
        Some(any_value::Value::BytesValue(b)) => json!({"bytesValue": b64(b)}),
        Some(any_value::Value::ArrayValue(a)) => {
            json!({"arrayValue": {"values": a.values.iter().map(any_json).collect::<Vec<_>>()}})
        }
        Some(any_value::Value::KvlistValue(l)) => {
            json!({"kvlistValue": {"values": kvs_json(&l.values)}})
        }
        // Dictionary references exist only on the wire of profiles.
        Some(_) | None => json!({}),
    }
}

/// OTLP attributes in jsonpb's form.
pub fn kvs_json(list: &[otlp::KeyValue]) -> Vec<Value> {
    list.iter()
        .map(|kv| {
            let value = kv.value.as_ref().map_or_else(|| json!({}), any_json);
            json!({"key": kv.key, "value": value})
        })
        .collect()
}

const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn span_json(s: &otlp::Span) -> Value {
    let mut m = Map::new();
    put(&mut m, "traceId", b64(&s.trace_id));
    put(&mut m, "spanId", b64(&s.span_id));
    put(&mut m, "traceState", json!(s.trace_state));
    put(&mut m, "parentSpanId", b64(&s.parent_span_id));
    put(&mut m, "flags", json!(s.flags));
    put(&mut m, "name", json!(s.name));
    let kind = usize::try_from(s.kind).ok().and_then(|k| KINDS.get(k));
    if let Some(k) = kind.filter(|_| s.kind != 0) {
        m.insert("kind".into(), json!(k));
    }
    put(
        &mut m,
        "startTimeUnixNano",
        json!(s.start_time_unix_nano.to_string()),
    );
    put(
        &mut m,
        "endTimeUnixNano",
        json!(s.end_time_unix_nano.to_string()),
    );
    put(&mut m, "attributes", json!(kvs_json(&s.attributes)));
    let events: Vec<Value> = s
        .events
        .iter()
        .map(|e| {
            let mut m = Map::new();
            put(&mut m, "timeUnixNano", json!(e.time_unix_nano.to_string()));
            put(&mut m, "name", json!(e.name));
            put(&mut m, "attributes", json!(kvs_json(&e.attributes)));
            Value::Object(m)
        })
        .collect();
    put(&mut m, "events", json!(events));
    let links: Vec<Value> = s
        .links
        .iter()
        .map(|l| {
            let mut m = Map::new();
            put(&mut m, "traceId", b64(&l.trace_id));
            put(&mut m, "spanId", b64(&l.span_id));
            put(&mut m, "attributes", json!(kvs_json(&l.attributes)));
            Value::Object(m)
        })
        .collect();
    put(&mut m, "links", json!(links));
    if let Some(st) = &s.status {
        let mut sm = Map::new();
        put(&mut sm, "message", json!(st.message));
        if let Some(c) = usize::try_from(st.code)
            .ok()
            .and_then(|c| STATUS.get(c))
            .filter(|_| st.code != 0)
        {
            sm.insert("code".into(), json!(c));
        }
        m.insert("status".into(), Value::Object(sm));
    }
    Value::Object(m)
}

/// ResourceSpans in jsonpb's form.
pub fn resource_spans_json(list: &[ResourceSpans]) -> Vec<Value> {
    list.iter()
        .map(|rs| {
            let mut m = Map::new();
            if let Some(r) = &rs.resource {
                m.insert(
                    "resource".into(),
                    json!({"attributes": kvs_json(&r.attributes)}),
                );
            }
            let scopes: Vec<Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let mut sm = Map::new();
                    if let Some(sc) = &ss.scope {
                        let mut scm = Map::new();
                        put(&mut scm, "name", json!(sc.name));
                        put(&mut scm, "version", json!(sc.version));
                        sm.insert("scope".into(), Value::Object(scm));
                    }
                    sm.insert(
                        "spans".into(),
                        json!(ss.spans.iter().map(span_json).collect::<Vec<_>>()),
                    );
                    Value::Object(sm)
                })
                .collect();
            m.insert("scopeSpans".into(), json!(scopes));
            Value::Object(m)
        })
        .collect()
}

fn status_number(c: model::StatusCode) -> i32 {
    match c {
        model::StatusCode::Unset => 0,
        model::StatusCode::Ok => 1,
        model::StatusCode::Error => 2,
    }
}
