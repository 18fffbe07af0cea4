//! Stored traces → OTLP/JSON `TracesData`, the `result` of api_v3's
//! `GetTrace`/`FindTraces` over HTTP.
//!
//! Jaeger writes it with the OTel Collector's `ptrace.JSONMarshaler`
//! (`internal/jptrace/traces.go`, `MarshalJSONPB`), so the encoding is
//! OTLP/JSON as pdata writes it: lowerCamelCase keys; trace and span ids as
//! hex; `kind` and `status.code` as their enum **numbers** (SERVER = 2,
//! ERROR = 2, as in Jaeger's `snapshots/GetTrace.json`); 64-bit integers
//! (`startTimeUnixNano`, `intValue`) as decimal strings; fields at their
//! default (empty string, 0, empty list) left out, while `resource`,
//! `scope` and `status` are always present, `{}` when empty (pdata's
//! `pdata/internal/generated_proto_span.go`, `generated_proto_resourcespans.go`
//! and `json/stream.go` in open-telemetry/opentelemetry-collector: ints of
//! 64 bits through `WriteUint64`/`WriteInt64` as strings, non-finite
//! doubles as `"NaN"`/`"Infinity"`).
//!
//! Spans are grouped by (cluster, resource) into `resourceSpans` and by
//! instrumentation scope into `scopeSpans`, in order of first appearance.
//! Meridian adds one resource attribute, `meridian.cluster` (as the v1 API
//! adds the process tag of the same name). Trace-level warnings (skew
//! correction, spans hidden by the scope, truncation) go where Jaeger v2
//! puts the warnings of its adjusters: the `@jaeger@warnings` string-array
//! attribute, on the first span shown.

use std::sync::Arc;

use base64::Engine as _;
use model::{AttrValue, KeyValue, Resource, Span, StatusCode, Trace};
use serde_json::{Map, Value, json};

use crate::jaeger::model::CLUSTER_TAG;

/// The span attribute Jaeger v2 keeps warnings in (`jptrace.WarningsAttribute`).
pub const WARNINGS_ATTRIBUTE: &str = "@jaeger@warnings";
/// The resource attribute holding the service name.
const SERVICE_NAME: &str = "service.name";

/// One OTLP/JSON `AnyValue`.
pub fn any_value(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => json!({"stringValue": s}),
        AttrValue::Bool(b) => json!({"boolValue": b}),
        AttrValue::Int(i) => json!({"intValue": i.to_string()}),
        AttrValue::Double(d) if d.is_finite() => json!({"doubleValue": d}),
        // proto3 JSON spells the non-finite doubles as strings.
        AttrValue::Double(d) if d.is_nan() => json!({"doubleValue": "NaN"}),
        AttrValue::Double(d) if *d > 0.0 => json!({"doubleValue": "Infinity"}),
        AttrValue::Double(_) => json!({"doubleValue": "-Infinity"}),
        AttrValue::Bytes(b) => {
            json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)})
        }
    }
}

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

fn attributes(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|a| kv(&a.key, any_value(&a.value)))
        .collect()
}

/// Sets `key` to `value` unless it is the default (proto3 JSON).
fn put(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let default = match &value {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_u64() == Some(0),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    };
    if !default {
        obj.insert(key.to_owned(), value);
    }
}

fn nanos(n: u64) -> Value {
    if n == 0 {
        Value::Null
    } else {
        Value::from(n.to_string())
    }
}

fn resource(res: &Resource, cluster: &str) -> Value {
    let mut attrs = Vec::with_capacity(res.attributes.len() + 2);
    if !res.service_name.is_empty() {
        attrs.push(kv(SERVICE_NAME, json!({"stringValue": res.service_name})));
    }
    attrs.extend(attributes(&res.attributes));
    if !cluster.is_empty() && !res.attributes.iter().any(|a| a.key == CLUSTER_TAG) {
        attrs.push(kv(CLUSTER_TAG, json!({"stringValue": cluster})));
    }
    let mut obj = Map::new();
    put(&mut obj, "attributes", Value::Array(attrs));
    Value::Object(obj)
}

/// One span in OTLP/JSON, with `warnings` in [`WARNINGS_ATTRIBUTE`].
pub fn span(s: &Span, warnings: &[String]) -> Value {
    let mut obj = Map::new();
    obj.insert("traceId".into(), s.trace_id.to_hex().into());
    obj.insert("spanId".into(), s.span_id.to_hex().into());
    put(&mut obj, "traceState", s.trace_state.clone().into());
    put(
        &mut obj,
        "parentSpanId",
        s.parent_span_id
            .map(|p| p.to_hex())
            .unwrap_or_default()
            .into(),
    );
    put(&mut obj, "flags", s.flags.into());
    put(&mut obj, "name", s.name.clone().into());
    put(&mut obj, "kind", s.kind.as_i32().into());
    put(&mut obj, "startTimeUnixNano", nanos(s.start_unix_nano));
    put(&mut obj, "endTimeUnixNano", nanos(s.end_unix_nano));
    let mut attrs = attributes(&s.attributes);
    if !warnings.is_empty() {
        let values: Vec<Value> = warnings.iter().map(|w| json!({"stringValue": w})).collect();
        attrs.push(kv(
            WARNINGS_ATTRIBUTE,
            json!({"arrayValue": {"values": values}}),
        ));
    }
    put(&mut obj, "attributes", Value::Array(attrs));
    let events: Vec<Value> = s
        .events
        .iter()
        .map(|e| {
            let mut ev = Map::new();
            put(&mut ev, "timeUnixNano", nanos(e.time_unix_nano));
            put(&mut ev, "name", e.name.clone().into());
            put(
                &mut ev,
                "attributes",
                Value::Array(attributes(&e.attributes)),
            );
            Value::Object(ev)
        })
        .collect();
    put(&mut obj, "events", Value::Array(events));
    let links: Vec<Value> = s
        .links
        .iter()
        .map(|l| {
            let mut lk = Map::new();
            lk.insert("traceId".into(), l.trace_id.to_hex().into());
            lk.insert("spanId".into(), l.span_id.to_hex().into());
            put(
                &mut lk,
                "attributes",
                Value::Array(attributes(&l.attributes)),
            );
            Value::Object(lk)
        })
        .collect();
    put(&mut obj, "links", Value::Array(links));
    let mut status = Map::new();
    put(&mut status, "message", s.status_message.clone().into());
    let code = match s.status_code {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    };
    put(&mut status, "code", Value::from(code));
    obj.insert("status".into(), Value::Object(status));
    Value::Object(obj)
}

/// Groups of spans sharing a resource (as one cluster reported it) and,
/// within, a scope: `(cluster, resource, [((scope name, version), spans)])`.
type Groups<'a> = Vec<(
    &'a str,
    Arc<Resource>,
    Vec<((&'a str, &'a str), Vec<&'a Span>)>,
)>;

fn group<'a>(spans: impl Iterator<Item = &'a Span>) -> Groups<'a> {
    let mut groups: Groups<'a> = Vec::new();
    for s in spans {
        let idx = match groups.iter().position(|(c, r, _)| {
            *c == s.cluster.as_str() && (Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        }) {
            Some(i) => i,
            None => {
                groups.push((s.cluster.as_str(), Arc::clone(&s.resource), Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[idx].2;
        let key = (s.scope_name.as_str(), s.scope_version.as_str());
        match scopes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(s),
            None => scopes.push((key, vec![s])),
        }
    }
    groups
}

/// `resourceSpans` of several traces, each trace's `warnings` on its first
/// span.
pub fn resource_spans(traces: &[(Trace, Vec<String>)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (trace, warnings) in traces {
        let first = trace.spans.first().map(|s| s.span_id);
        for (cluster, res, scopes) in group(trace.spans.iter()) {
            let scope_spans: Vec<Value> = scopes
                .into_iter()
                .map(|((name, version), spans)| {
                    let mut scope = Map::new();
                    put(&mut scope, "name", name.into());
                    put(&mut scope, "version", version.into());
                    let spans: Vec<Value> = spans
                        .into_iter()
                        .map(|s| {
                            let w: &[String] = if Some(s.span_id) == first {
                                warnings
                            } else {
                                &[]
                            };
                            span(s, w)
                        })
                        .collect();
                    json!({"scope": Value::Object(scope), "spans": spans})
                })
                .collect();
            out.push(json!({"resource": resource(&res, cluster), "scopeSpans": scope_spans}));
        }
    }
    out
}

/// The HTTP body of `GetTrace`/`FindTraces`: `{"result": TracesData}`
/// (Jaeger's `GRPCGatewayWrapper`).
pub fn wrapped(traces: &[(Trace, Vec<String>)]) -> Value {
    json!({"result": {"resourceSpans": resource_spans(traces)}})
}
