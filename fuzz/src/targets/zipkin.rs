//! Zipkin v2 proto3 (`zipkin.proto3.ListOfSpans`, `application/x-protobuf`
//! on the agent's Zipkin port): the receiver's decoder.

use prost::Message;
use proto::{
    bounds::{self, DecodeLimits, Schema},
    validate::sanitize,
    zipkin::proto3::{self, wire},
};

use super::{BASE, Target, otlp::scanned_bound};

pub const PROTO3: Target = Target {
    name: "zipkin-proto3",
    about: "Zipkin v2 proto3 ListOfSpans: bounds scan, prost, conversion to OTLP, sanitize",
    bound: "2 × the scan's estimate + 6 × input + 256 KiB; the scan never counts fewer spans than prost decodes",
    dict: &[
        b"\x0a",
        b"\x0a\x00",
        b"\x0a\x08",
        b"\x42\x00",
        b"\x4a\x00",
        b"\x52\x00",
        b"\x5a\x00",
        b"\x5a\x04\x0a\x00\x12\x00",
        b"\x31",
        b"\x80\x80\x80\x80\x10",
    ],
    seeds,
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    let endpoint = |name: &str, ip: Vec<u8>| wire::Endpoint {
        service_name: name.into(),
        ipv4: ip,
        ipv6: Vec::new(),
        port: 8080,
    };
    let span = wire::Span {
        trace_id: vec![0x5a; 16],
        parent_id: vec![0x6b; 8],
        id: vec![0x35; 8],
        kind: wire::span::Kind::Client as i32,
        name: "get /api".into(),
        timestamp: 1_556_604_172_355_737,
        duration: 1_431,
        local_endpoint: Some(endpoint("frontend", vec![10, 0, 0, 1])),
        remote_endpoint: Some(endpoint("backend", vec![10, 0, 0, 2])),
        annotations: vec![wire::Annotation {
            timestamp: 1_556_604_172_355_800,
            value: "ws".into(),
        }],
        tags: [("http.method".to_owned(), "GET".to_owned())].into(),
        debug: true,
        shared: false,
    };
    let short = wire::Span {
        trace_id: vec![0x11; 8],
        id: vec![0x22; 8],
        ..Default::default()
    };
    vec![
        wire::ListOfSpans {
            spans: vec![span.clone()],
        }
        .encode_to_vec(),
        wire::ListOfSpans {
            spans: vec![span, short],
        }
        .encode_to_vec(),
    ]
}

fn run(input: &[u8]) -> usize {
    let Ok(found) = bounds::check_protobuf(input, &Schema::ZIPKIN_SPANS, &DecodeLimits::RECEIVER)
    else {
        return BASE;
    };
    if let Ok(spans) = proto3::decode(input, &DecodeLimits::RECEIVER) {
        assert!(
            spans.len() <= found.spans,
            "the scan counted {} spans, prost decoded {}",
            found.spans,
            spans.len()
        );
        let mut req = proto::zipkin::to_otlp(spans);
        sanitize(&mut req);
    }
    scanned_bound(&found, input.len())
}
