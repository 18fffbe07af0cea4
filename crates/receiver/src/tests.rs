//! The receivers end to end in memory (no sockets): what a hostile body
//! gets back.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use proto::otlp::{ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Span};
use tower::ServiceExt;

use crate::{Limits, ReceiverMetrics, Sink, SinkError};

/// Counts the spans it accepts.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl Sink for Counting {
    async fn accept(&self, _: ExportTraceServiceRequest, spans: u64) -> Result<(), SinkError> {
        self.0.fetch_add(spans, Ordering::Relaxed);
        Ok(())
    }
}

/// One resource, one scope, `n` empty spans: `12 00` each, the review's
/// 2-byte span (about 240 bytes once decoded).
fn empty_spans(n: usize) -> Vec<u8> {
    use prost::Message;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    req.encode_to_vec()
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

#[tokio::test]
async fn http_refuses_a_body_of_empty_spans_before_decoding() {
    // 4 MiB, inside every byte limit: 2 M spans, ~500 MiB decoded.
    let body = empty_spans(2 << 20);
    assert!(body.len() < Limits::default().max_request_bytes);
    let sink = Counting::default();
    let app = crate::http::otlp_router(sink.clone(), Limits::default(), ReceiverMetrics::default());
    let resp = app
        .oneshot(
            Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text =
        String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    assert!(text.contains("more than 100000 spans"), "{text}");
    assert_eq!(sink.0.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn http_json_and_zipkin_are_bounded_too() {
    let spans = vec!["{}"; 100_001].join(",");
    let otlp = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    let app = crate::http::otlp_router(
        Counting::default(),
        Limits::default(),
        ReceiverMetrics::default(),
    );
    let resp = app
        .oneshot(
            Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(otlp))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let zipkin = format!(
        "[{}]",
        vec![r#"{"traceId":"1","id":"2"}"#; 100_001].join(",")
    );
    let app = crate::http::zipkin_router(
        Counting::default(),
        Limits::default(),
        ReceiverMetrics::default(),
    );
    let resp = app
        .oneshot(
            Request::post("/api/v2/spans")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(zipkin))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn grpc_refuses_a_message_of_empty_spans_before_decoding() {
    let sink = Counting::default();
    let metrics = ReceiverMetrics::default();
    let svc = crate::grpc::service(sink.clone(), Limits::default(), metrics.clone());
    let resp = svc
        .oneshot(
            Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
                .header(header::CONTENT_TYPE, "application/grpc")
                .header("te", "trailers")
                .body(Body::from(grpc_frame(&empty_spans(2 << 20))))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let trailers = body.collect().await.unwrap().trailers().cloned();
    let status = tonic::Status::from_header_map(&parts.headers)
        .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map))
        .expect("a grpc-status");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("more than 100000 spans"),
        "{status:?}"
    );
    assert_eq!(sink.0.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.requests_with("otlp_grpc", "rejected"), 1);
}

#[tokio::test]
async fn grpc_still_accepts_a_normal_export() {
    use prost::Message;
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span; 3],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let sink = Counting::default();
    let svc = crate::grpc::service(sink.clone(), Limits::default(), ReceiverMetrics::default());
    let resp = svc
        .oneshot(
            Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
                .header(header::CONTENT_TYPE, "application/grpc")
                .body(Body::from(grpc_frame(&req.encode_to_vec())))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let trailers = body.collect().await.unwrap().trailers().cloned();
    let status = tonic::Status::from_header_map(&parts.headers)
        .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map));
    assert!(
        status.as_ref().is_none_or(|s| s.code() == tonic::Code::Ok),
        "{status:?}"
    );
    assert_eq!(sink.0.load(Ordering::Relaxed), 3);
}
