//! Meridian's model → Zipkin v2 JSON, field by field as openzipkin's
//! `zipkin2-api.yaml` (openzipkin/zipkin-api) defines `Span`, `Endpoint`,
//! `Annotation` and `DependencyLink`, in the order and with the omissions
//! of Zipkin's own writer (`zipkin2/internal/V2SpanWriter.java`: absent
//! and zero fields left out, tags sorted by key).
//!
//! - `traceId`: lower hex, 16 characters when the high 64 bits are zero
//!   (a 64-bit Zipkin id), else 32; `id`, `parentId`: 16.
//! - `kind`: CLIENT, SERVER, PRODUCER, CONSUMER; absent for internal and
//!   unspecified spans.
//! - `timestamp`, `duration`: microseconds (nanoseconds / 1000); a
//!   duration below 1 µs is 1 (Zipkin rounds up), zero ones are absent.
//! - `localEndpoint`: `serviceName` = the resource's `service.name`, `ipv4`
//!   / `ipv6` / `port` from `network.local.address` / `network.local.port`.
//! - `remoteEndpoint`: `serviceName` from `peer.service`, the rest from
//!   `network.peer.address` / `network.peer.port` (what the Zipkin
//!   receiver stores, `proto::zipkin`); absent when none is set.
//! - `annotations`: events, by time; an event with attributes is
//!   `{"<name>":{<attributes>}}` as JSON text (the OTel → Zipkin rule).
//! - `tags`: every span attribute in its string form, the resource's
//!   attributes but `service.name` (so `k8s.cluster.name` names the
//!   cluster), `otel.scope.name` / `otel.scope.version`; status ERROR →
//!   `error` (its message) unless an `error` attribute is there, OK →
//!   `otel.status_code: OK`. The attributes an endpoint field took are not
//!   repeated.
//! - Not carried: links, trace state, `debug`, `shared`.

use std::{collections::BTreeMap, net::IpAddr};

use model::{AttrValue, KeyValue, SERVICE_ATTRIBUTE, Span, SpanKind, StatusCode, Trace};
use serde::Serialize;

/// Attributes that become endpoint fields (and are not repeated as tags).
const PEER_SERVICE: &str = "peer.service";
const PEER_ADDRESS: &str = "network.peer.address";
const PEER_PORT: &str = "network.peer.port";
const LOCAL_ADDRESS: &str = "network.local.address";
const LOCAL_PORT: &str = "network.local.port";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ZEndpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl ZEndpoint {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZAnnotation {
    pub timestamp: u64,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZSpan {
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_endpoint: Option<ZEndpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<ZEndpoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<ZAnnotation>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A Zipkin `DependencyLink`; `errorCount` is left out when 0, as
/// Zipkin's `DependencyLinkBytesEncoder` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub error_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Zipkin's name of a kind; `None` for internal and unspecified spans.
pub fn kind_name(kind: SpanKind) -> Option<&'static str> {
    match kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal | SpanKind::Unspecified => None,
    }
}

fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// An endpoint's address and port from `address_key` / `port_key`; the
/// keys it used go into `taken`.
fn endpoint(
    attrs: &[KeyValue],
    address_key: &'static str,
    port_key: &'static str,
    taken: &mut Vec<&'static str>,
) -> ZEndpoint {
    let mut e = ZEndpoint::default();
    if let Some(ip) = attr(attrs, address_key)
        .and_then(AttrValue::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok())
    {
        match ip {
            IpAddr::V4(v4) => e.ipv4 = Some(v4.to_string()),
            IpAddr::V6(v6) => e.ipv6 = Some(v6.to_string()),
        }
        taken.push(address_key);
    }
    let port = match attr(attrs, port_key) {
        Some(AttrValue::Int(p)) => u16::try_from(*p).ok(),
        Some(AttrValue::Str(p)) => p.parse::<u16>().ok(),
        _ => None,
    };
    if let Some(p) = port.filter(|p| *p != 0) {
        e.port = Some(p);
        taken.push(port_key);
    }
    e
}

fn annotation(e: &model::Event) -> ZAnnotation {
    let value = if e.attributes.is_empty() {
        e.name.clone()
    } else {
        let attrs: serde_json::Map<String, serde_json::Value> = e
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.to_search_string().into()))
            .collect();
        serde_json::json!({ e.name.as_str(): attrs }).to_string()
    };
    ZAnnotation {
        timestamp: micros(e.time_unix_nano),
        value,
    }
}

/// One span in Zipkin v2 JSON.
pub fn span(s: &Span) -> ZSpan {
    let mut taken: Vec<&'static str> = Vec::new();
    let service = s.service_name();
    let mut local = endpoint(&s.attributes, LOCAL_ADDRESS, LOCAL_PORT, &mut taken);
    if !service.is_empty() {
        local.service_name = Some(service.to_owned());
    }
    let mut remote = endpoint(&s.attributes, PEER_ADDRESS, PEER_PORT, &mut taken);
    if let Some(peer) = attr(&s.attributes, PEER_SERVICE)
        .map(AttrValue::to_search_string)
        .filter(|p| !p.is_empty())
    {
        remote.service_name = Some(peer);
        taken.push(PEER_SERVICE);
    }
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    for kv in &s.resource.attributes {
        if kv.key != SERVICE_ATTRIBUTE {
            tags.insert(kv.key.clone(), kv.value.to_search_string());
        }
    }
    if !s.scope_name.is_empty() {
        tags.insert("otel.scope.name".into(), s.scope_name.clone());
    }
    if !s.scope_version.is_empty() {
        tags.insert("otel.scope.version".into(), s.scope_version.clone());
    }
    for kv in &s.attributes {
        if !taken.contains(&kv.key.as_str()) {
            tags.insert(kv.key.clone(), kv.value.to_search_string());
        }
    }
    match s.status_code {
        StatusCode::Error => {
            tags.entry("error".into())
                .or_insert_with(|| s.status_message.clone());
        }
        StatusCode::Ok => {
            tags.insert("otel.status_code".into(), "OK".into());
        }
        StatusCode::Unset => {}
    }
    let mut annotations: Vec<ZAnnotation> = s.events.iter().map(annotation).collect();
    annotations.sort_by(|a, b| (a.timestamp, &a.value).cmp(&(b.timestamp, &b.value)));
    let duration_ns = s.duration_nanos();
    ZSpan {
        trace_id: s.trace_id.to_jaeger_hex(),
        parent_id: s.parent_span_id.map(|p| p.to_hex()),
        id: s.span_id.to_hex(),
        kind: kind_name(s.kind),
        name: (!s.name.is_empty()).then(|| s.name.clone()),
        timestamp: Some(micros(s.start_unix_nano)).filter(|t| *t != 0),
        duration: (duration_ns > 0).then(|| micros(duration_ns).max(1)),
        local_endpoint: (!local.is_empty()).then_some(local),
        remote_endpoint: (!remote.is_empty()).then_some(remote),
        annotations,
        tags,
    }
}

/// A trace as Zipkin's `Trace`: its spans, by start time then id.
pub fn trace(t: &Trace) -> Vec<ZSpan> {
    let mut spans: Vec<&Span> = t.spans.iter().collect();
    spans.sort_by_key(|s| (s.start_unix_nano, s.span_id));
    spans.into_iter().map(span).collect()
}

/// The service on the far side of a span, as `remoteEndpoint.serviceName`
/// shows it (`peer.service`).
pub fn remote_service(s: &Span) -> Option<String> {
    attr(&s.attributes, PEER_SERVICE)
        .map(AttrValue::to_search_string)
        .filter(|p| !p.is_empty())
}

/// The tag key `remoteServiceName` searches.
pub const REMOTE_SERVICE_TAG: &str = PEER_SERVICE;

/// A tag value as the `tags` map shows it, from a span or its resource.
pub fn tag_value(s: &Span, key: &str) -> Option<String> {
    attr(&s.attributes, key)
        .or_else(|| attr(&s.resource.attributes, key))
        .map(AttrValue::to_search_string)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use store::testsuite::SpanBuilder;

    use super::*;

    #[test]
    fn kinds_times_and_ids() {
        let s = SpanBuilder::new(7, 2, "api")
            .parent(1)
            .name("get")
            .kind(SpanKind::Server)
            .at_unix(1_556_604_172_355_737_000, 1)
            .build();
        let z = span(&s);
        assert_eq!(z.trace_id, "5a000000000000000000000000000007");
        assert_eq!(z.id.len(), 16);
        assert_eq!(z.parent_id.as_deref().map(str::len), Some(16));
        assert_eq!(z.kind, Some("SERVER"));
        assert_eq!(z.timestamp, Some(1_556_604_172_355_737));
        assert_eq!(z.duration, Some(1_000));
        let mut short = s.clone();
        short.end_unix_nano = short.start_unix_nano + 10;
        assert_eq!(span(&short).duration, Some(1), "rounded up");
        short.end_unix_nano = short.start_unix_nano;
        assert_eq!(span(&short).duration, None);
        for (kind, name) in [
            (SpanKind::Client, Some("CLIENT")),
            (SpanKind::Producer, Some("PRODUCER")),
            (SpanKind::Consumer, Some("CONSUMER")),
            (SpanKind::Internal, None),
            (SpanKind::Unspecified, None),
        ] {
            assert_eq!(kind_name(kind), name);
        }
    }

    #[test]
    fn endpoints_status_and_events() {
        let s = SpanBuilder::new(1, 1, "web")
            .attr("peer.service", AttrValue::Str("db".into()))
            .attr("network.peer.address", AttrValue::Str("::1".into()))
            .attr("network.peer.port", AttrValue::Int(5432))
            .attr("network.local.address", AttrValue::Str("10.0.0.1".into()))
            .attr("http.status_code", AttrValue::Int(500))
            .event(
                "retry",
                vec![KeyValue {
                    key: "n".into(),
                    value: AttrValue::Int(2),
                }],
            )
            .error("boom")
            .build();
        let z = serde_json::to_value(span(&s)).unwrap();
        assert_eq!(
            z["remoteEndpoint"],
            serde_json::json!({"serviceName": "db", "ipv6": "::1", "port": 5432})
        );
        assert_eq!(
            z["localEndpoint"],
            serde_json::json!({"serviceName": "web", "ipv4": "10.0.0.1"})
        );
        assert_eq!(z["tags"]["error"], "boom");
        assert_eq!(z["tags"]["http.status_code"], "500");
        assert!(z["tags"].get("peer.service").is_none());
        assert!(z["tags"].get("network.peer.port").is_none());
        assert_eq!(z["annotations"][0]["value"], r#"{"retry":{"n":"2"}}"#);
    }
}
