//! Zipkin v2 proto3 (`Content-Type: application/x-protobuf`): the
//! official `zipkin.proto` `ListOfSpans` (openzipkin/zipkin-api, vendored
//! in `proto/zipkin/`), decoded after the bounds scan and turned into the
//! [`ZipkinSpan`]s the JSON path decodes, so one conversion serves both.
//!
//! Field by field (zipkin.proto): `trace_id` (8 or 16 bytes) and `id` /
//! `parent_id` (8 bytes) → lower-hex; other lengths become empty (or, for
//! a parent, invalid), so validation rejects that span alone. `kind` enum
//! → its name; `timestamp` (fixed64 µs) and `duration` (µs), 0 = absent;
//! endpoint `ipv4` (4 bytes) / `ipv6` (16 bytes) → text, `port` 0 = absent;
//! `annotations`, `tags`, `debug`, `shared` as in JSON.

use std::net::{Ipv4Addr, Ipv6Addr};

use prost::Message;

use super::{Annotation, Endpoint, ZipkinError, ZipkinSpan};
use crate::bounds::{DecodeLimits, Schema};

/// Generated from `proto/zipkin/zipkin.proto` (package `zipkin.proto3`).
#[allow(missing_debug_implementations, clippy::all)]
pub mod wire {
    include!("../generated/zipkin.proto3.rs");
}

pub use wire::ListOfSpans;

/// Checks `bytes` against `limits` ([`Schema::ZIPKIN_SPANS`]), then
/// decodes a `ListOfSpans`.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    crate::bounds::check_protobuf(bytes, &Schema::ZIPKIN_SPANS, limits)?;
    let list = ListOfSpans::decode(bytes)?;
    Ok(list.spans.into_iter().map(span).collect())
}

fn hex_id(bytes: &[u8], lens: &[usize]) -> String {
    if lens.contains(&bytes.len()) {
        hex::encode(bytes)
    } else {
        String::new()
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn endpoint(e: wire::Endpoint) -> Endpoint {
    let ipv4 = <[u8; 4]>::try_from(e.ipv4.as_slice())
        .ok()
        .map(|b| Ipv4Addr::from(b).to_string());
    let ipv6 = <[u8; 16]>::try_from(e.ipv6.as_slice())
        .ok()
        .map(|b| Ipv6Addr::from(b).to_string());
    Endpoint {
        service_name: non_empty(e.service_name),
        ipv4,
        ipv6,
        port: u16::try_from(e.port).ok().filter(|p| *p != 0),
    }
}

fn kind(k: i32) -> Option<String> {
    use wire::span::Kind;
    match Kind::try_from(k) {
        Ok(Kind::Client) => Some("CLIENT".into()),
        Ok(Kind::Server) => Some("SERVER".into()),
        Ok(Kind::Producer) => Some("PRODUCER".into()),
        Ok(Kind::Consumer) => Some("CONSUMER".into()),
        _ => None,
    }
}

fn span(s: wire::Span) -> ZipkinSpan {
    let parent_id = match s.parent_id.len() {
        0 => None,
        // A malformed parent must fail validation, not become a root.
        8 => Some(hex::encode(&s.parent_id)),
        _ => Some("not-an-id".into()),
    };
    ZipkinSpan {
        trace_id: hex_id(&s.trace_id, &[8, 16]),
        id: hex_id(&s.id, &[8]),
        parent_id,
        name: non_empty(s.name),
        kind: kind(s.kind),
        timestamp: (s.timestamp != 0).then_some(s.timestamp),
        duration: (s.duration != 0).then_some(s.duration),
        local_endpoint: s.local_endpoint.map(endpoint),
        remote_endpoint: s.remote_endpoint.map(endpoint),
        annotations: s
            .annotations
            .into_iter()
            .map(|a| Annotation {
                timestamp: a.timestamp,
                value: a.value,
            })
            .collect(),
        tags: s.tags.into_iter().collect(),
        debug: s.debug.then_some(true),
        shared: s.shared.then_some(true),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{otlp, validate::sanitize, zipkin::to_otlp};

    fn sample() -> ListOfSpans {
        ListOfSpans {
            spans: vec![wire::Span {
                trace_id: hex::decode("5af7183fb1d4cf5f").unwrap(),
                parent_id: hex::decode("6b221d5bc9e6496c").unwrap(),
                id: hex::decode("352bff9a74ca9ad2").unwrap(),
                kind: wire::span::Kind::Server as i32,
                name: "get /api".into(),
                timestamp: 1_556_604_172_355_737,
                duration: 1_431,
                local_endpoint: Some(wire::Endpoint {
                    service_name: "backend".into(),
                    ipv4: vec![192, 168, 99, 1],
                    ipv6: Vec::new(),
                    port: 3306,
                }),
                remote_endpoint: Some(wire::Endpoint {
                    service_name: String::new(),
                    ipv4: vec![172, 19, 0, 2],
                    ipv6: Vec::new(),
                    port: 58648,
                }),
                annotations: vec![wire::Annotation {
                    timestamp: 1_556_604_172_355_800,
                    value: "ws".into(),
                }],
                tags: [("http.method".to_owned(), "GET".to_owned())].into(),
                debug: false,
                shared: false,
            }],
        }
    }

    #[test]
    fn decodes_the_official_schema_like_json() {
        // The span of zipkin2-api.yaml's `Span` example, as proto3.
        let bytes = sample().encode_to_vec();
        let spans = decode(&bytes, &DecodeLimits::RECEIVER).unwrap();
        let z = &spans[0];
        assert_eq!(
            (z.trace_id.as_str(), z.id.as_str()),
            ("5af7183fb1d4cf5f", "352bff9a74ca9ad2")
        );
        assert_eq!(z.parent_id.as_deref(), Some("6b221d5bc9e6496c"));
        assert_eq!(z.kind.as_deref(), Some("SERVER"));
        let local = z.local_endpoint.as_ref().unwrap();
        assert_eq!(local.ipv4.as_deref(), Some("192.168.99.1"));
        assert_eq!(local.port, Some(3306));
        let remote = z.remote_endpoint.as_ref().unwrap();
        assert_eq!(remote.service_name, None);
        let mut req = to_otlp(spans);
        assert_eq!(sanitize(&mut req).accepted, 1);
        let s = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.start_time_unix_nano, 1_556_604_172_355_737_000);
        assert_eq!(
            otlp::string_attr(&s.attributes, "network.local.address"),
            Some("192.168.99.1")
        );
        assert_eq!(
            otlp::string_attr(&s.attributes, "network.peer.address"),
            Some("172.19.0.2")
        );
    }

    #[test]
    fn bad_ids_fail_their_span_only() {
        let mut list = sample();
        let mut bad = list.spans[0].clone();
        bad.id = vec![1, 2, 3];
        let mut bad_parent = list.spans[0].clone();
        bad_parent.parent_id = vec![9; 5];
        list.spans.extend([bad, bad_parent]);
        let spans = decode(&list.encode_to_vec(), &DecodeLimits::RECEIVER).unwrap();
        let out = sanitize(&mut to_otlp(spans));
        assert_eq!((out.accepted, out.rejected), (1, 2));
    }

    #[test]
    fn the_scan_bounds_spans_tags_and_annotations() {
        let limits = DecodeLimits {
            max_spans: 2,
            max_attributes: 1,
            max_events: 1,
            ..DecodeLimits::RECEIVER
        };
        let mut three = sample();
        three.spans = vec![three.spans[0].clone(); 3];
        assert!(
            decode(&three.encode_to_vec(), &limits)
                .unwrap_err()
                .is_too_large()
        );
        let mut tags = sample();
        tags.spans[0].tags.insert("b".into(), "c".into());
        assert!(
            decode(&tags.encode_to_vec(), &limits)
                .unwrap_err()
                .is_too_large()
        );
        let mut anns = sample();
        let a = anns.spans[0].annotations[0].clone();
        anns.spans[0].annotations.push(a);
        assert!(
            decode(&anns.encode_to_vec(), &limits)
                .unwrap_err()
                .is_too_large()
        );
        assert!(decode(&sample().encode_to_vec(), &limits).is_ok());
        assert!(!decode(b"\x0a\xff", &limits).unwrap_err().is_too_large());
    }
}
