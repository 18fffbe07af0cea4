//! Zipkin v2 JSON and proto3 (`POST /api/v2/spans`) → OTLP.
//!
//! Mapping (the same the OTel Collector's zipkin receiver uses): spans are
//! grouped into one resource per `localEndpoint.serviceName`; `kind`
//! CLIENT/SERVER/PRODUCER/CONSUMER → span kind; `timestamp`/`duration` µs →
//! ns; `annotations` → events; `tags` → string attributes, and an `error`
//! tag → status ERROR with the tag's value as message; `remoteEndpoint` →
//! `peer.service`, `network.peer.address`, `network.peer.port`;
//! `localEndpoint`'s address and port → `network.local.address`,
//! `network.local.port` (so the Zipkin query API can give them back). Ids
//! that are not hex become empty, so [`crate::validate::sanitize`] rejects
//! the span (partial success) instead of failing the batch.
//!
//! [`proto3`] decodes the official `zipkin.proto` `ListOfSpans` into the
//! same [`ZipkinSpan`]s, so both encodings share one conversion.

pub mod proto3;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::bounds::{BoundsError, DecodeLimits, Dialect};
use crate::otlp::{
    self, AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
    Status, any_value::Value, span::Event,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    pub trace_id: String,
    pub id: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub timestamp: Option<u64>,
    #[serde(default)]
    pub duration: Option<u64>,
    #[serde(default)]
    pub local_endpoint: Option<Endpoint>,
    #[serde(default)]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub debug: Option<bool>,
    #[serde(default)]
    pub shared: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub ipv4: Option<String>,
    #[serde(default)]
    pub ipv6: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Deserialize)]
pub struct Annotation {
    pub timestamp: u64,
    pub value: String,
}

/// Why a Zipkin body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    #[error("invalid Zipkin v2 JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid Zipkin v2 proto3 ListOfSpans: {0}")]
    Proto(#[from] prost::DecodeError),
    /// Refused before decoding ([`crate::bounds`]).
    #[error(transparent)]
    Bounds(#[from] BoundsError),
}

impl ZipkinError {
    /// Refused for its size (a cap of [`DecodeLimits`]), not malformed.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::Bounds(e) if !e.is_malformed())
    }
}

/// Parses a Zipkin v2 JSON array, after checking it against `limits`
/// ([`crate::bounds::check_json`]).
pub fn decode_json(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    crate::bounds::check_json(bytes, Dialect::Zipkin, limits)?;
    Ok(serde_json::from_slice(bytes)?)
}

fn id_bytes(text: &str, len: usize) -> Vec<u8> {
    if text.is_empty() || text.len() > len * 2 {
        return Vec::new();
    }
    let padded = format!("{text:0>width$}", width = len * 2);
    hex::decode(padded).unwrap_or_default()
}

fn kv_str(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn kind(k: Option<&str>) -> i32 {
    match k {
        Some("SERVER") => 2,
        Some("CLIENT") => 3,
        Some("PRODUCER") => 4,
        Some("CONSUMER") => 5,
        _ => 1,
    }
}

fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// An endpoint's address and port as `network.<side>.address` and
/// `network.<side>.port` (IPv4 preferred, as Zipkin's own model does).
fn endpoint_attrs(out: &mut Vec<KeyValue>, side: &str, e: Endpoint) {
    if let Some(ip) = e.ipv4.or(e.ipv6).filter(|ip| !ip.is_empty()) {
        out.push(kv_str(&format!("network.{side}.address"), ip));
    }
    if let Some(port) = e.port.filter(|p| *p != 0) {
        out.push(int_kv(&format!("network.{side}.port"), i64::from(port)));
    }
}

fn convert(z: ZipkinSpan) -> Span {
    let start = z.timestamp.unwrap_or(0).saturating_mul(1_000);
    let end = start.saturating_add(z.duration.unwrap_or(0).saturating_mul(1_000));
    let mut attributes = Vec::with_capacity(z.tags.len() + 3);
    let mut status = None;
    for (k, v) in z.tags {
        if k == "error" {
            status = Some(Status {
                code: 2,
                message: v.clone(),
            });
        }
        attributes.push(kv_str(&k, v));
    }
    if let Some(remote) = z.remote_endpoint {
        if let Some(svc) = remote.service_name.clone().filter(|s| !s.is_empty()) {
            attributes.push(kv_str("peer.service", svc));
        }
        endpoint_attrs(&mut attributes, "peer", remote);
    }
    if let Some(local) = z.local_endpoint {
        endpoint_attrs(&mut attributes, "local", local);
    }
    Span {
        trace_id: id_bytes(&z.trace_id, 16),
        span_id: id_bytes(&z.id, 8),
        parent_span_id: z
            .parent_id
            .as_deref()
            .map(|p| {
                let b = id_bytes(p, 8);
                // A malformed parent must fail validation, not become a root.
                if b.is_empty() { vec![0xff; 3] } else { b }
            })
            .unwrap_or_default(),
        name: z.name.unwrap_or_default(),
        kind: kind(z.kind.as_deref()),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events: z
            .annotations
            .into_iter()
            .map(|a| Event {
                time_unix_nano: a.timestamp.saturating_mul(1_000),
                name: a.value,
                ..Default::default()
            })
            .collect(),
        status,
        ..Default::default()
    }
}

/// Converts Zipkin spans to one OTLP request, a resource per service.
pub fn to_otlp(spans: Vec<ZipkinSpan>) -> ExportTraceServiceRequest {
    let mut by_service: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for z in spans {
        let service = z
            .local_endpoint
            .as_ref()
            .and_then(|e| e.service_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| model::UNKNOWN_SERVICE.to_owned());
        by_service.entry(service).or_default().push(convert(z));
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![otlp::string_kv(model::SERVICE_ATTRIBUTE, &service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::sanitize;

    #[test]
    fn maps_a_zipkin_span() {
        let json = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
          "name":"get /api","kind":"SERVER","timestamp":1556604172355737,"duration":1431,
          "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},
          "remoteEndpoint":{"serviceName":"frontend","ipv4":"172.19.0.2","port":58648},
          "annotations":[{"timestamp":1556604172355800,"value":"ws"}],
          "tags":{"http.method":"GET","error":"timeout"}}]"#;
        let mut req = to_otlp(decode_json(json, &DecodeLimits::RECEIVER).unwrap());
        assert_eq!(sanitize(&mut req).accepted, 1);
        let rs = &req.resource_spans[0];
        assert_eq!(
            otlp::string_attr(&rs.resource.as_ref().unwrap().attributes, "service.name"),
            Some("backend")
        );
        let s = &rs.scope_spans[0].spans[0];
        assert_eq!(hex::encode(&s.trace_id), "0000000000000000463ac35c9f6413ad");
        assert_eq!(s.kind, 2);
        assert_eq!(s.start_time_unix_nano, 1_556_604_172_355_737_000);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 1_431_000);
        assert_eq!(s.status.as_ref().unwrap().code, 2);
        assert_eq!(s.events[0].name, "ws");
        assert_eq!(
            otlp::string_attr(&s.attributes, "peer.service"),
            Some("frontend")
        );
    }

    #[test]
    fn bad_ids_are_rejected_per_span() {
        let json = br#"[{"traceId":"xyz","id":"a2fb4a1d1a96d312"},
                         {"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"nothex"},
                         {"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d313"}]"#;
        let mut req = to_otlp(decode_json(json, &DecodeLimits::RECEIVER).unwrap());
        let out = sanitize(&mut req);
        assert_eq!((out.accepted, out.rejected), (1, 2));
    }
}
