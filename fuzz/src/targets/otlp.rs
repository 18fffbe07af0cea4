//! OTLP protobuf and JSON, Zipkin v2 JSON: the receivers' decoders.

use prost::Message;
use proto::{
    bounds::{self, DecodeLimits, Dialect, Scanned, Schema},
    otlp::{self, ExportTraceServiceRequest},
    validate::sanitize,
};

use super::{BASE, Target};

/// The bound of an accepted input.
pub fn scanned_bound(found: &Scanned, len: usize) -> usize {
    assert!(found.decoded_bytes <= DecodeLimits::RECEIVER.max_decoded_bytes);
    2 * found.decoded_bytes + 6 * len + BASE
}

pub const PROTOBUF: Target = Target {
    name: "otlp-protobuf",
    about: "OTLP ExportTraceServiceRequest protobuf: bounds scan, prost, sanitize",
    bound: "2 × the scan's estimate + 6 × input + 256 KiB; the scan never counts fewer spans than prost decodes",
    dict: &[
        b"\x0a",
        b"\x12",
        b"\x12\x00",
        b"\x4a\x00",
        b"\x5a\x00",
        b"\x6a\x00",
        b"\x2a\x00",
        b"\x32\x00",
        b"\x0b",
        b"\x80\x80\x80\x80\x10",
    ],
    seeds: seeds_protobuf,
    run: run_protobuf,
};

pub const JSON: Target = Target {
    name: "otlp-json",
    about: "OTLP/JSON ExportTraceServiceRequest: bounds scan, serde_json, sanitize",
    bound: "2 × the scan's estimate + 6 × input + 256 KiB; the scan never counts fewer spans than serde decodes",
    dict: &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b"\"",
        b":",
        b"\\u0073",
        b"\"spans\":[",
        b"\"attributes\":[",
        b"\"events\":[",
        b"\"links\":[",
        b"\"arrayValue\":{\"values\":[",
        b"\"kvlistValue\":{\"values\":[",
        b"{},",
        b"\"intValue\":\"9\"",
        b"null",
        b"1e999",
    ],
    seeds: seeds_json,
    run: run_json,
};

pub const ZIPKIN: Target = Target {
    name: "zipkin-json",
    about: "Zipkin v2 JSON span array: bounds scan, serde_json, conversion to OTLP, sanitize",
    bound: "2 × the scan's estimate + 6 × input + 256 KiB; the scan never counts fewer spans than serde decodes",
    dict: &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b"\"",
        b":",
        b"\"tags\":{",
        b"\"annotations\":[",
        b"{\"traceId\":\"1\",\"id\":\"2\"},",
        b"\"localEndpoint\":{\"serviceName\":\"a\"}",
        b"18446744073709551615",
    ],
    seeds: seeds_zipkin,
    run: run_zipkin,
};

fn corpus_requests() -> Vec<ExportTraceServiceRequest> {
    let mut g = proto::corpus::Generator::new(17);
    vec![g.request(1), g.request(8), g.request(16)]
}

fn seeds_protobuf() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = corpus_requests()
        .iter()
        .map(|r| r.encode_to_vec())
        .collect();
    out.push(with_everything().encode_to_vec());
    out
}

fn seeds_json() -> Vec<Vec<u8>> {
    let mut reqs = corpus_requests();
    reqs.truncate(2);
    reqs.push(with_everything());
    reqs.iter()
        .filter_map(|r| serde_json::to_vec(r).ok())
        .collect()
}

fn seeds_zipkin() -> Vec<Vec<u8>> {
    vec![
        br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001","name":"get /api","kind":"SERVER","timestamp":1556604172355737,"duration":1431,"localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},"remoteEndpoint":{"serviceName":"frontend","ipv4":"172.19.0.2","port":58648},"annotations":[{"timestamp":1556604172355800,"value":"ws"}],"tags":{"http.method":"GET","error":"timeout"}}]"#.to_vec(),
        br#"[{"traceId":"5b8efff798038103d269b633813fc60c","id":"eee19b7ec3c1b174","name":"a","kind":"CLIENT","timestamp":1,"duration":2,"debug":true,"shared":false},{"traceId":"5b8efff798038103d269b633813fc60c","id":"eee19b7ec3c1b175","parentId":"eee19b7ec3c1b174","localEndpoint":{"serviceName":"b","ipv6":"::1"}}]"#.to_vec(),
    ]
}

/// A request with every message type in it: scope, resource, events,
/// links, nested array and key-value list values, entity refs.
fn with_everything() -> ExportTraceServiceRequest {
    use proto::otlp::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, Resource,
        ResourceSpans, ScopeSpans, Span, Status, any_value::Value, span,
    };
    let nested = KeyValue {
        key: "nested".into(),
        value: Some(AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(Value::IntValue(7)),
                    },
                    AnyValue {
                        value: Some(Value::KvlistValue(KeyValueList {
                            values: vec![otlp::string_kv("inner", "v")],
                        })),
                    },
                    AnyValue {
                        value: Some(Value::BytesValue(vec![1, 2, 3])),
                    },
                ],
            })),
        }),
        ..Default::default()
    };
    let span = Span {
        trace_id: vec![0x5b; 16],
        span_id: vec![0xee; 8],
        parent_span_id: vec![0xef; 8],
        name: "op".into(),
        kind: 2,
        start_time_unix_nano: 1_544_712_660_000_000_000,
        end_time_unix_nano: 1_544_712_661_000_000_000,
        attributes: vec![otlp::string_kv("http.method", "GET"), nested],
        events: vec![span::Event {
            time_unix_nano: 1_544_712_660_500_000_000,
            name: "ev".into(),
            attributes: vec![otlp::string_kv("k", "v")],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            attributes: vec![otlp::string_kv("l", "v")],
            ..Default::default()
        }],
        status: Some(Status {
            code: 2,
            message: "boom".into(),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![otlp::string_kv("service.name", "svc")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1".into(),
                    attributes: vec![otlp::string_kv("s", "v")],
                    ..Default::default()
                }),
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn run_protobuf(input: &[u8]) -> usize {
    let Ok(found) = bounds::check_protobuf(input, &Schema::EXPORT_TRACE, &DecodeLimits::RECEIVER)
    else {
        return BASE;
    };
    if let Ok(mut req) = ExportTraceServiceRequest::decode(input) {
        assert!(
            otlp::span_count(&req) <= found.spans,
            "the scan counted {} spans, prost decoded {}",
            found.spans,
            otlp::span_count(&req)
        );
        sanitize(&mut req);
    }
    scanned_bound(&found, input.len())
}

fn run_json(input: &[u8]) -> usize {
    let Ok(found) = bounds::check_json(input, Dialect::Otlp, &DecodeLimits::RECEIVER) else {
        return BASE;
    };
    if let Ok(mut req) = serde_json::from_slice::<ExportTraceServiceRequest>(input) {
        assert!(
            otlp::span_count(&req) <= found.spans,
            "the scan counted {} spans, serde decoded {}",
            found.spans,
            otlp::span_count(&req)
        );
        sanitize(&mut req);
    }
    scanned_bound(&found, input.len())
}

fn run_zipkin(input: &[u8]) -> usize {
    let Ok(found) = bounds::check_json(input, Dialect::Zipkin, &DecodeLimits::RECEIVER) else {
        return BASE;
    };
    if let Ok(spans) = serde_json::from_slice::<Vec<proto::zipkin::ZipkinSpan>>(input) {
        assert!(spans.len() <= found.spans);
        let mut req = proto::zipkin::to_otlp(spans);
        sanitize(&mut req);
    }
    scanned_bound(&found, input.len())
}
