//! The OTLP → Jaeger UI model mapping (Jaeger's own `otlp2jaeger` rules):
//! resource attributes → process tags; kind → `span.kind`; status →
//! `otel.status_code`, `otel.status_description`, `error: true`; scope →
//! `otel.scope.name` / `otel.scope.version`; trace state →
//! `w3c.tracestate`; events → logs (`event` field first); parent →
//! CHILD_OF; links → FOLLOWS_FROM.

use std::{collections::BTreeMap, sync::Arc};

use base64::Engine as _;
use model::{AttrValue, KeyValue, Resource, Span, StatusCode, Trace};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize, PartialEq)]
pub struct JTag {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: Value,
}

#[derive(Debug, Serialize)]
pub struct JRef {
    #[serde(rename = "refType")]
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Serialize)]
pub struct JLog {
    pub timestamp: u64,
    pub fields: Vec<JTag>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JSpan {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<JRef>,
    pub start_time: u64,
    pub duration: u64,
    pub tags: Vec<JTag>,
    pub logs: Vec<JLog>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JProcess {
    pub service_name: String,
    pub tags: Vec<JTag>,
}

#[derive(Debug, Serialize)]
pub struct JTrace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<JSpan>,
    pub processes: BTreeMap<String, JProcess>,
    pub warnings: Option<Vec<String>>,
}

/// Integers beyond ±2^53 lose precision in JavaScript: Jaeger sends them as
/// strings (still typed int64).
const MAX_SAFE_INT: i64 = (1 << 53) - 1;

pub fn tag(key: &str, value: &AttrValue) -> JTag {
    let (kind, value) = match value {
        AttrValue::Str(s) => ("string", Value::from(s.as_str())),
        AttrValue::Bool(b) => ("bool", Value::from(*b)),
        AttrValue::Int(i) if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(i) => {
            ("int64", Value::from(*i))
        }
        AttrValue::Int(i) => ("int64", Value::from(i.to_string())),
        AttrValue::Double(d) if d.is_finite() => ("float64", Value::from(*d)),
        AttrValue::Double(d) => ("float64", Value::from(d.to_string())),
        AttrValue::Bytes(b) => (
            "binary",
            Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
    };
    JTag {
        key: key.to_owned(),
        kind,
        value,
    }
}

fn str_tag(key: &str, value: &str) -> JTag {
    tag(key, &AttrValue::Str(value.to_owned()))
}

fn tags(kvs: &[KeyValue]) -> Vec<JTag> {
    kvs.iter().map(|kv| tag(&kv.key, &kv.value)).collect()
}

fn span_tags(span: &Span) -> Vec<JTag> {
    let mut out = tags(&span.attributes);
    if !span.scope_name.is_empty() {
        out.push(str_tag("otel.scope.name", &span.scope_name));
    }
    if !span.scope_version.is_empty() {
        out.push(str_tag("otel.scope.version", &span.scope_version));
    }
    if let Some(kind) = span.kind.jaeger_name() {
        out.push(str_tag("span.kind", kind));
    }
    match span.status_code {
        StatusCode::Ok => out.push(str_tag("otel.status_code", "OK")),
        StatusCode::Error => {
            out.push(str_tag("otel.status_code", "ERROR"));
            out.push(tag("error", &AttrValue::Bool(true)));
        }
        StatusCode::Unset => {}
    }
    if !span.status_message.is_empty() {
        out.push(str_tag("otel.status_description", &span.status_message));
    }
    if !span.trace_state.is_empty() {
        out.push(str_tag("w3c.tracestate", &span.trace_state));
    }
    out
}

/// The process tag naming the cluster a span came from.
pub const CLUSTER_TAG: &str = "meridian.cluster";

/// Maps a stored trace to Jaeger's UI model.
pub fn trace(t: &Trace) -> JTrace {
    let trace_hex = t.trace_id.to_jaeger_hex();
    // A process is a resource as one cluster reported it: the same
    // resource attributes from two clusters are two processes.
    let mut processes: Vec<(Arc<Resource>, &str, String)> = Vec::new();
    let mut spans = Vec::with_capacity(t.spans.len());
    let mut ordered: Vec<&Span> = t.spans.iter().collect();
    ordered.sort_by_key(|s| s.start_unix_nano);
    for s in ordered {
        let pid = match processes.iter().find(|(r, c, _)| {
            *c == s.cluster.as_str() && (Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        }) {
            Some((_, _, pid)) => pid.clone(),
            None => {
                let pid = format!("p{}", processes.len() + 1);
                processes.push((Arc::clone(&s.resource), s.cluster.as_str(), pid.clone()));
                pid
            }
        };
        let mut references = Vec::with_capacity(1 + s.links.len());
        if let Some(parent) = s.parent_span_id {
            references.push(JRef {
                ref_type: "CHILD_OF",
                trace_id: trace_hex.clone(),
                span_id: parent.to_hex(),
            });
        }
        for link in &s.links {
            references.push(JRef {
                ref_type: "FOLLOWS_FROM",
                trace_id: link.trace_id.to_jaeger_hex(),
                span_id: link.span_id.to_hex(),
            });
        }
        spans.push(JSpan {
            trace_id: trace_hex.clone(),
            span_id: s.span_id.to_hex(),
            flags: s.flags & 0xff,
            operation_name: s.name.clone(),
            references,
            start_time: s.start_unix_nano / 1_000,
            duration: s.duration_nanos() / 1_000,
            tags: span_tags(s),
            logs: s
                .events
                .iter()
                .map(|e| {
                    let mut fields = vec![str_tag("event", &e.name)];
                    fields.extend(tags(&e.attributes));
                    JLog {
                        timestamp: e.time_unix_nano / 1_000,
                        fields,
                    }
                })
                .collect(),
            process_id: pid,
            warnings: None,
        });
    }
    JTrace {
        trace_id: trace_hex,
        spans,
        processes: processes
            .into_iter()
            .map(|(r, cluster, pid)| {
                let mut tags = tags(&r.attributes);
                tags.push(str_tag(CLUSTER_TAG, cluster));
                (
                    pid,
                    JProcess {
                        service_name: r.service_name.clone(),
                        tags,
                    },
                )
            })
            .collect(),
        warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{ClusterId, Event, Link, SpanId, SpanKind, TraceId};
    use serde_json::json;

    fn span(id: u8, resource: &Arc<Resource>) -> Span {
        Span {
            trace_id: TraceId::from_array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            span_id: SpanId::from_array([0, 0, 0, 0, 0, 0, 0, id]),
            parent_span_id: None,
            name: format!("op{id}"),
            kind: SpanKind::Unspecified,
            start_unix_nano: 2_000_000 * u64::from(id),
            end_unix_nano: 2_000_000 * u64::from(id) + 1_500,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            flags: 0x101,
            trace_state: String::new(),
            scope_name: String::new(),
            scope_version: String::new(),
            cluster: ClusterId::new("c").unwrap(),
            resource: Arc::clone(resource),
        }
    }

    #[test]
    fn tag_types() {
        let j = |v: AttrValue| serde_json::to_value(tag("k", &v)).unwrap();
        assert_eq!(
            j(AttrValue::Str("x".into())),
            json!({"key":"k","type":"string","value":"x"})
        );
        assert_eq!(
            j(AttrValue::Bool(false)),
            json!({"key":"k","type":"bool","value":false})
        );
        assert_eq!(
            j(AttrValue::Int(-7)),
            json!({"key":"k","type":"int64","value":-7})
        );
        assert_eq!(
            j(AttrValue::Int(1 << 53)),
            json!({"key":"k","type":"int64","value":"9007199254740992"})
        );
        assert_eq!(
            j(AttrValue::Double(1.5)),
            json!({"key":"k","type":"float64","value":1.5})
        );
        assert_eq!(
            j(AttrValue::Double(f64::NAN)),
            json!({"key":"k","type":"float64","value":"NaN"})
        );
        assert_eq!(
            j(AttrValue::Bytes(vec![1, 2, 3])),
            json!({"key":"k","type":"binary","value":"AQID"})
        );
    }

    #[test]
    fn trace_mapping() {
        let r1 = Arc::new(Resource {
            service_name: "a".into(),
            attributes: vec![KeyValue::string("k8s.cluster.name", "east")],
        });
        // Same content, different allocation: still one process.
        let r1b = Arc::new((*r1).clone());
        let r2 = Arc::new(Resource {
            service_name: "b".into(),
            attributes: vec![],
        });
        let mut root = span(1, &r1);
        root.kind = SpanKind::Server;
        root.status_code = StatusCode::Error;
        root.status_message = "bad".into();
        root.scope_name = "lib".into();
        root.trace_state = "ot=th:8".into();
        root.events.push(Event {
            time_unix_nano: 5_000,
            name: "boom".into(),
            attributes: vec![KeyValue::new("n", AttrValue::Int(1))],
        });
        let mut child = span(2, &r1b);
        child.parent_span_id = Some(root.span_id);
        child.status_code = StatusCode::Ok;
        let mut other = span(3, &r2);
        other.links.push(Link {
            trace_id: TraceId::from_array([9; 16]),
            span_id: SpanId::from_array([8; 8]),
            attributes: vec![],
        });
        let t = Trace {
            trace_id: root.trace_id,
            spans: vec![other, child, root],
        };
        let v = serde_json::to_value(trace(&t)).unwrap();
        assert_eq!(v["traceID"], "0000000000000001");
        assert_eq!(v["warnings"], Value::Null);
        let spans = v["spans"].as_array().unwrap();
        assert_eq!(
            spans
                .iter()
                .map(|s| s["operationName"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["op1", "op2", "op3"],
            "sorted by start"
        );
        let root = &spans[0];
        assert_eq!(root["spanID"], "0000000000000001");
        assert_eq!(root["flags"], 1);
        assert_eq!(root["startTime"], 2_000);
        assert_eq!(root["duration"], 1);
        assert_eq!(root["processID"], "p1");
        assert_eq!(root["references"], json!([]));
        assert_eq!(
            root["tags"],
            json!([
                {"key":"otel.scope.name","type":"string","value":"lib"},
                {"key":"span.kind","type":"string","value":"server"},
                {"key":"otel.status_code","type":"string","value":"ERROR"},
                {"key":"error","type":"bool","value":true},
                {"key":"otel.status_description","type":"string","value":"bad"},
                {"key":"w3c.tracestate","type":"string","value":"ot=th:8"},
            ])
        );
        assert_eq!(
            root["logs"],
            json!([{"timestamp":5,"fields":[
                {"key":"event","type":"string","value":"boom"},
                {"key":"n","type":"int64","value":1}]}])
        );
        assert_eq!(
            spans[1]["references"],
            json!([{"refType":"CHILD_OF","traceID":"0000000000000001","spanID":"0000000000000001"}])
        );
        assert_eq!(spans[1]["processID"], "p1");
        assert_eq!(
            spans[1]["tags"],
            json!([{"key":"otel.status_code","type":"string","value":"OK"}])
        );
        assert_eq!(
            spans[2]["references"],
            json!([{"refType":"FOLLOWS_FROM","traceID":"09090909090909090909090909090909","spanID":"0808080808080808"}])
        );
        assert_eq!(spans[2]["processID"], "p2");
        assert_eq!(
            v["processes"],
            json!({
                "p1": {"serviceName":"a","tags":[
                    {"key":"k8s.cluster.name","type":"string","value":"east"},
                    {"key":"meridian.cluster","type":"string","value":"c"},
                ]},
                "p2": {"serviceName":"b","tags":[{"key":"meridian.cluster","type":"string","value":"c"}]},
            })
        );
    }
}
