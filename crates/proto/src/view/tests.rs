use prost::Message;

use super::{ClusterClaim, ViewError, check::against_prost, parse, stamp_cluster};
use crate::otlp::{
    self, AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
    any_value,
};

fn agree(bytes: &[u8]) {
    if let Err(e) = against_prost(bytes) {
        panic!("{e}: {bytes:02x?}");
    }
}

fn corpus() -> Vec<u8> {
    crate::corpus::Generator::new(7).request(64).encode_to_vec()
}

#[test]
fn the_corpus_reads_as_prost_decodes_it() {
    let bytes = corpus();
    let view = parse(&bytes, 64).unwrap();
    assert_eq!(view.spans.len(), 64);
    assert_eq!(view.resources.len(), 1);
    assert_eq!(view.resources[0].service, Some("frontend"));
    assert_eq!(view.resources[0].cluster, ClusterClaim::Absent);
    assert!(view.clean());
    let errors = view
        .spans
        .iter()
        .filter(|s| s.status_code == Some(2))
        .count();
    assert!(errors > 0, "the corpus has error spans");
    agree(&bytes);
}

#[test]
fn the_stamp_equals_the_decoding_stamp() {
    let bytes = corpus();
    let view = parse(&bytes, 0).unwrap();
    let stamped = stamp_cluster(&bytes, &view, "edge-1").unwrap().unwrap();
    let got = ExportTraceServiceRequest::decode(&stamped[..]).unwrap();
    let mut want = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
    crate::convert::stamp_cluster(&mut want, &model::ClusterId::new("edge-1").unwrap());
    assert_eq!(got, want);
    // Stamped once, the bytes are the record as they are.
    let again = parse(&stamped, 0).unwrap();
    assert_eq!(again.resources[0].cluster, ClusterClaim::One("edge-1"));
    assert_eq!(stamp_cluster(&stamped, &again, "edge-1"), Ok(None));
    assert!(stamp_cluster(&stamped, &again, "edge-2").is_err());
}

fn span(name: &str) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: name.into(),
        ..Default::default()
    }
}

fn request(resource: Option<Resource>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource,
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn a_resource_without_a_resource_message_is_stamped_too() {
    let bytes = request(None, vec![span("a")]).encode_to_vec();
    agree(&bytes);
    let view = parse(&bytes, 0).unwrap();
    let stamped = stamp_cluster(&bytes, &view, "c").unwrap().unwrap();
    let got = ExportTraceServiceRequest::decode(&stamped[..]).unwrap();
    let attrs = &got.resource_spans[0].resource.as_ref().unwrap().attributes;
    assert_eq!(otlp::string_attr(attrs, "k8s.cluster.name"), Some("c"));
}

#[test]
fn claims_that_are_not_one_string_are_other() {
    let int = KeyValue {
        key: "k8s.cluster.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(3)),
        }),
        ..Default::default()
    };
    for attrs in [
        vec![int],
        vec![
            otlp::string_kv("k8s.cluster.name", "a"),
            otlp::string_kv("k8s.cluster.name", "a"),
        ],
    ] {
        let res = Resource {
            attributes: attrs,
            ..Default::default()
        };
        let bytes = request(Some(res), vec![span("a")]).encode_to_vec();
        agree(&bytes);
        let view = parse(&bytes, 0).unwrap();
        assert_eq!(view.resources[0].cluster, ClusterClaim::Other);
        assert!(stamp_cluster(&bytes, &view, "a").is_err());
    }
}

#[test]
fn invalid_spans_are_problems_for_the_decoding_path() {
    let mut zero_parent = span("z");
    zero_parent.parent_span_id = vec![0; 8];
    let mut bad_link = span("l");
    bad_link
        .links
        .push(opentelemetry_proto::tonic::trace::v1::span::Link {
            trace_id: vec![1; 3],
            ..Default::default()
        });
    let mut short = span("s");
    short.trace_id = vec![1; 15];
    for s in [zero_parent, bad_link, short] {
        let bytes = request(None, vec![span("ok"), s]).encode_to_vec();
        agree(&bytes);
        assert!(!parse(&bytes, 0).unwrap().clean());
    }
}

/// Raw field encodings for hand-made messages.
fn field(tag: u32, wire: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(u64::from(tag << 3 | u32::from(wire)), &mut out);
    if wire == 2 {
        prost::encoding::encode_varint(body.len() as u64, &mut out);
    }
    out.extend_from_slice(body);
    out
}

fn in_span(span_body: &[u8]) -> Vec<u8> {
    field(1, 2, &field(2, 2, &field(2, 2, span_body)))
}

#[test]
fn repeated_fields_follow_prost() {
    // Two names (the last wins), two statuses (they merge), a oneof set
    // twice (the last variant wins), two resources (they merge).
    let mut s = field(5, 2, b"first");
    s.extend(field(5, 2, b"second"));
    s.extend(field(15, 2, &field(3, 0, &[2])));
    s.extend(field(15, 2, &field(2, 2, b"msg")));
    let bytes = in_span(&s);
    agree(&bytes);
    let v = parse(&bytes, 0).unwrap();
    assert_eq!(v.spans[0].name, "second");
    assert_eq!(v.spans[0].status_code, Some(2));

    let string_then_int = {
        let mut any = field(1, 2, b"frontend");
        any.extend(field(3, 0, &[5]));
        let mut kv = field(1, 2, b"service.name");
        kv.extend(field(2, 2, &any));
        kv
    };
    let mut rs = field(1, 2, &field(1, 2, &string_then_int));
    rs.extend(field(
        1,
        2,
        &field(1, 2, &{
            let mut kv = field(1, 2, b"service.name");
            kv.extend(field(2, 2, &field(1, 2, b"later")));
            kv
        }),
    ));
    let bytes = field(1, 2, &rs);
    agree(&bytes);
    assert_eq!(parse(&bytes, 0).unwrap().resources[0].service, None);
}

#[test]
fn hostile_bytes_are_refused_where_prost_refuses_them() {
    let cases: Vec<Vec<u8>> = vec![
        in_span(&field(5, 0, &[1])),          // name as a varint
        in_span(&field(5, 2, &[0xff, 0xfe])), // name not UTF-8
        in_span(&field(7, 5, &[0; 4])),       // fixed64 as fixed32
        in_span(&[
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ]), // 10th byte 2
        vec![0x0a, 0x05, 0x12],               // truncated
        vec![0x00],                           // field 0
        vec![0x0f],                           // wire type 7
    ];
    for bytes in cases {
        assert!(parse(&bytes, 0).is_err(), "{bytes:02x?}");
        assert!(
            ExportTraceServiceRequest::decode(&bytes[..]).is_err(),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn what_the_view_does_not_follow_takes_the_decoding_path() {
    // A group in an unknown field: prost skips it, the view declines.
    let bytes = in_span(&[0x9b, 0x01, 0x9c, 0x01]);
    assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
    assert!(matches!(parse(&bytes, 0), Err(ViewError::Unsupported(_))));
    // Nesting beyond MAX_DEPTH (arrays in arrays): prost decodes it.
    let mut any = field(1, 2, b"leaf");
    for _ in 0..40 {
        any = field(5, 2, &field(1, 2, &any));
    }
    let mut kv = field(1, 2, b"deep");
    kv.extend(field(2, 2, &any));
    let bytes = in_span(&field(9, 2, &kv));
    assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
    assert!(matches!(parse(&bytes, 0), Err(ViewError::Unsupported(_))));
}

#[test]
fn every_prefix_and_flip_of_the_corpus_agrees_with_prost() {
    let bytes = crate::corpus::Generator::new(3).request(8).encode_to_vec();
    for end in 0..bytes.len() {
        agree(&bytes[..end]);
    }
    let mut state = 99u64;
    for _ in 0..2_000 {
        let mut b = bytes.clone();
        let i = (crate::corpus::xorshift(&mut state) as usize) % b.len();
        b[i] ^= 1 << (crate::corpus::xorshift(&mut state) % 8);
        agree(&b);
    }
}
