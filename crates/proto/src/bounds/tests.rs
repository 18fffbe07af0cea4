use prost::Message;

use super::*;
use crate::otlp::{
    self, ExportTraceServiceRequest, KeyValue, ResourceSpans, ScopeSpans, Span, span::Event,
};

/// A request of `n` spans with `attrs` attributes and `events` events each.
fn request(n: usize, attrs: usize, events: usize) -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        attributes: (0..attrs)
            .map(|i| otlp::string_kv(&format!("k{i}"), "v"))
            .collect(),
        events: (0..events)
            .map(|_| Event {
                name: "e".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![otlp::string_kv("service.name", "svc")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span; n],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `n` empty spans (`12 00`) in one scope of one resource: the review's
/// 2-byte span.
pub(crate) fn empty_spans(n: usize) -> Vec<u8> {
    let mut scope = Vec::with_capacity(2 * n);
    for _ in 0..n {
        scope.extend_from_slice(&[0x12, 0x00]);
    }
    let mut resource = Vec::new();
    put_field(&mut resource, 2, &scope);
    let mut req = Vec::new();
    put_field(&mut req, 1, &resource);
    req
}

fn put_field(out: &mut Vec<u8>, number: u8, body: &[u8]) {
    out.push(number << 3 | 2);
    prost::encoding::encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_spans: 10,
        max_attributes: 4,
        max_events: 3,
        max_links: 2,
        max_decoded_bytes: 1 << 20,
    }
}

#[test]
fn protobuf_counts_what_prost_would_build() {
    let req = request(10, 4, 3);
    let bytes = req.encode_to_vec();
    let found = check_protobuf(&bytes, &Schema::EXPORT_TRACE, &limits()).unwrap();
    assert_eq!(found.spans, 10);
    // Every struct counted: 10 spans, 40 + 1 attributes and their values
    // (inline), 30 events, one resource and one scope.
    let structs = 10 * size_of::<Span>()
        + 41 * size_of::<KeyValue>()
        + 30 * size_of::<Event>()
        + size_of::<ResourceSpans>()
        + size_of::<ScopeSpans>()
        + size_of::<ExportTraceServiceRequest>();
    assert_eq!(found.decoded_bytes, structs);
}

#[test]
fn protobuf_caps_each_kind() {
    let l = limits();
    let refused = |req: ExportTraceServiceRequest| {
        check_protobuf(&req.encode_to_vec(), &Schema::EXPORT_TRACE, &l).unwrap_err()
    };
    assert_eq!(refused(request(11, 0, 0)), BoundsError::Spans { limit: 10 });
    assert_eq!(
        refused(request(1, 5, 0)),
        BoundsError::Attributes {
            item: "span",
            limit: 4
        }
    );
    assert_eq!(refused(request(1, 0, 4)), BoundsError::Events { limit: 3 });
    let tight = DecodeLimits {
        max_decoded_bytes: 4 * size_of::<Span>(),
        ..l
    };
    let bytes = request(5, 0, 0).encode_to_vec();
    assert_eq!(
        check_protobuf(&bytes, &Schema::EXPORT_TRACE, &tight),
        Err(BoundsError::Decoded {
            limit: 4 * size_of::<Span>()
        })
    );
}

#[test]
fn empty_spans_are_refused_before_decoding() {
    // 1 MiB of `12 00`: 524,288 spans of 2 bytes, ~120 MiB once decoded.
    let bytes = empty_spans(1 << 19);
    assert_eq!(
        check_protobuf(&bytes, &Schema::EXPORT_TRACE, &DecodeLimits::RECEIVER),
        Err(BoundsError::Spans { limit: 100_000 })
    );
    // Without a span cap (federation), the struct estimate refuses it.
    assert!(matches!(
        check_protobuf(&bytes, &Schema::EXPORT_TRACE, &DecodeLimits::FEDERATION),
        Err(BoundsError::Decoded { .. })
    ));
}

#[test]
fn protobuf_refuses_what_prost_refuses_or_cannot_bound() {
    let l = limits();
    let scan = |b: &[u8]| check_protobuf(b, &Schema::EXPORT_TRACE, &l);
    assert!(scan(&[0x0a, 0x05, 0x00]).unwrap_err().is_malformed()); // past the end
    assert!(scan(&[0x0b]).unwrap_err().is_malformed()); // a group
    assert!(scan(&[0x00, 0x00]).unwrap_err().is_malformed()); // field 0
    assert!(scan(&[0x0a, 0x80]).unwrap_err().is_malformed()); // bad varint
    // Nested arrays of values 200 deep (prost refuses at 100).
    let mut value = Vec::new();
    for _ in 0..200 {
        let mut array = Vec::new();
        put_field(&mut array, 1, &value); // ArrayValue.values
        let mut any = Vec::new();
        put_field(&mut any, 5, &array); // AnyValue.array_value
        value = any;
    }
    let mut kv = Vec::new();
    put_field(&mut kv, 2, &value);
    let mut resource = Vec::new();
    put_field(&mut resource, 1, &kv);
    let mut rs = Vec::new();
    put_field(&mut rs, 1, &resource);
    let mut req = Vec::new();
    put_field(&mut req, 1, &rs);
    assert_eq!(scan(&req), Err(BoundsError::Depth { limit: 100 }));
    assert!(ExportTraceServiceRequest::decode(req.as_slice()).is_err());
    // Unknown fields of every wire type are skipped, as prost does.
    let unknown = [0x78, 0x01, 0x79, 0, 0, 0, 0, 0, 0, 0, 0, 0x7d, 0, 0, 0, 0];
    assert_eq!(scan(&unknown).unwrap().spans, 0);
    assert!(ExportTraceServiceRequest::decode(&unknown[..]).is_ok());
}

#[test]
fn other_schemas_count_their_elements() {
    use crate::federation::{DigestBatch, TraceDigest};
    let batch = DigestBatch {
        digests: vec![TraceDigest::default(); 100],
        policies: vec![String::new(); 10],
        ..Default::default()
    };
    let found = check_protobuf(
        &batch.encode_to_vec(),
        &Schema::DIGEST_BATCH,
        &DecodeLimits::FEDERATION,
    )
    .unwrap();
    assert_eq!(
        found.decoded_bytes,
        size_of::<DigestBatch>() + 100 * size_of::<TraceDigest>() + 10 * STRING
    );
    use crate::metrics::{RedSeries, RedWindow, WindowBatch};
    let windows = WindowBatch {
        windows: vec![RedWindow {
            series: vec![RedSeries {
                bin_index: vec![1, 2, 3],
                bin_count: vec![4, 5, 6],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let found = check_protobuf(
        &windows.encode_to_vec(),
        &Schema::WINDOW_BATCH,
        &DecodeLimits::FEDERATION,
    )
    .unwrap();
    assert_eq!(
        found.decoded_bytes,
        size_of::<WindowBatch>() + size_of::<RedWindow>() + size_of::<RedSeries>() + 3 * 4 + 3 * 8
    );
}

#[test]
fn json_counts_spans_attributes_and_events() {
    let json = serde_json::to_vec(&request(3, 2, 1)).unwrap();
    let found = check_json(&json, Dialect::Otlp, &limits()).unwrap();
    assert_eq!(found.spans, 3);
    assert!(found.decoded_bytes >= 3 * size_of::<Span>() + 7 * size_of::<KeyValue>());
    assert!(
        found.decoded_bytes < 8 * json.len(),
        "{} for {} bytes",
        found.decoded_bytes,
        json.len()
    );
    let l = limits();
    let refused = |req: ExportTraceServiceRequest| {
        check_json(&serde_json::to_vec(&req).unwrap(), Dialect::Otlp, &l).unwrap_err()
    };
    assert_eq!(refused(request(11, 0, 0)), BoundsError::Spans { limit: 10 });
    assert!(matches!(
        refused(request(1, 5, 0)),
        BoundsError::Attributes { limit: 4, .. }
    ));
    assert_eq!(refused(request(1, 0, 4)), BoundsError::Events { limit: 3 });
}

#[test]
fn json_sees_through_escaped_keys_and_charges_unknown_arrays() {
    let l = limits();
    let escaped = br#"{"resourceSpans":[{"scopeSpans":[{"sp\u0061ns":[{},{},{},{},{},{},{},{},{},{},{}]}]}]}"#;
    assert_eq!(
        check_json(escaped, Dialect::Otlp, &l),
        Err(BoundsError::Spans { limit: 10 })
    );
    // Elements of arrays serde buffers (inside a flattened AnyValue) cost
    // at least a `Content` each.
    let mut big =
        br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"x":["#.to_vec();
    for _ in 0..100_000 {
        big.extend_from_slice(b"0,");
    }
    big.extend_from_slice(b"0]}}]}}]}");
    assert!(matches!(
        check_json(&big, Dialect::Otlp, &l),
        Err(BoundsError::Decoded { .. })
    ));
    let deep = "[".repeat(200);
    assert_eq!(
        check_json(deep.as_bytes(), Dialect::Otlp, &l),
        Err(BoundsError::Depth { limit: 128 })
    );
}

#[test]
fn zipkin_counts_spans_tags_and_annotations() {
    let l = limits();
    let span = r#"{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","tags":{"a":"1","b":"2"},"annotations":[{"timestamp":1,"value":"x"}]}"#;
    let body = format!("[{}]", [span; 10].join(","));
    assert_eq!(
        check_json(body.as_bytes(), Dialect::Zipkin, &l)
            .unwrap()
            .spans,
        10
    );
    let body = format!("[{}]", [span; 11].join(","));
    assert_eq!(
        check_json(body.as_bytes(), Dialect::Zipkin, &l),
        Err(BoundsError::Spans { limit: 10 })
    );
    let tags = r#"[{"traceId":"1","id":"2","tags":{"a":"","b":"","c":"","d":"","e":""}}]"#;
    assert!(matches!(
        check_json(tags.as_bytes(), Dialect::Zipkin, &l),
        Err(BoundsError::Attributes { limit: 4, .. })
    ));
}
