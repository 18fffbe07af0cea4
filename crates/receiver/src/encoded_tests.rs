//! The encoded path ([`crate::Sink::prepare_encoded`]) against the decoding
//! path, through the real gRPC and HTTP services (no sockets).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::BodyExt;
use prost::Message;
use proto::{
    otlp::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    view::TraceView,
};
use tower::ServiceExt;

use crate::{Limits, Prepared, ReceiverMetrics, Sink, SinkError};

/// Records what reached it and by which path; takes the encoded path
/// unless told not to.
#[derive(Debug, Clone, Default)]
struct Recording {
    decline: bool,
    full: bool,
    encoded: Arc<Mutex<Vec<(Bytes, u64)>>>,
    decoded: Arc<Mutex<Vec<(ExportTraceServiceRequest, u64)>>>,
}

impl Sink for Recording {
    async fn accept(&self, req: ExportTraceServiceRequest, spans: u64) -> Result<(), SinkError> {
        self.decoded.lock().unwrap().push((req, spans));
        Ok(())
    }
    fn takes_encoded(&self) -> bool {
        true
    }
    fn refuse_early(&self) -> Option<SinkError> {
        self.full.then_some(SinkError::Full {
            retry_after: std::time::Duration::from_secs(1),
        })
    }
    fn prepare_encoded(&self, bytes: &Bytes, view: &TraceView<'_>) -> Option<Prepared> {
        assert!(view.clean(), "only clean requests are offered");
        (!self.decline).then(|| Prepared {
            record: bytes.clone(),
            spans: view.spans.len() as u64,
        })
    }
    async fn accept_encoded(&self, prepared: Prepared) -> Result<(), SinkError> {
        self.encoded
            .lock()
            .unwrap()
            .push((prepared.record, prepared.spans));
        Ok(())
    }
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Sends `msg` to the gRPC service: the status code and, when OK, the
/// response.
async fn grpc(sink: &Recording, msg: &[u8]) -> (tonic::Code, Option<ExportTraceServiceResponse>) {
    let svc = crate::grpc::service(sink.clone(), Limits::default(), ReceiverMetrics::default());
    let resp = svc
        .oneshot(
            Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
                .header(header::CONTENT_TYPE, "application/grpc")
                .body(Body::from(grpc_frame(msg)))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    let status = tonic::Status::from_header_map(&parts.headers)
        .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map));
    match status {
        Some(s) if s.code() != tonic::Code::Ok => (s.code(), None),
        _ => {
            let reply = ExportTraceServiceResponse::decode(data.get(5..).unwrap_or_default()).ok();
            (tonic::Code::Ok, reply)
        }
    }
}

fn corpus(spans: usize) -> Vec<u8> {
    proto::corpus::Generator::new(5)
        .request(spans)
        .encode_to_vec()
}

#[tokio::test]
async fn a_clean_request_is_accepted_as_its_own_bytes() {
    let sink = Recording::default();
    let bytes = corpus(16);
    let (code, reply) = grpc(&sink, &bytes).await;
    assert_eq!(code, tonic::Code::Ok);
    assert_eq!(reply.unwrap().partial_success, None);
    let encoded = sink.encoded.lock().unwrap().clone();
    assert_eq!(encoded, vec![(Bytes::from(bytes.clone()), 16)]);
    assert!(sink.decoded.lock().unwrap().is_empty());

    // OTLP/HTTP protobuf takes the same path.
    let app = crate::http::otlp_router(sink.clone(), Limits::default(), ReceiverMetrics::default());
    let resp = app
        .oneshot(
            Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .body(Body::from(bytes.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(sink.encoded.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_spans_take_the_decoding_path_and_keep_the_good_ones() {
    let mut req = proto::corpus::Generator::new(5).request(8);
    req.resource_spans[0].scope_spans[0].spans[3].span_id = vec![0; 8];
    let sink = Recording::default();
    let (code, reply) = grpc(&sink, &req.encode_to_vec()).await;
    assert_eq!(code, tonic::Code::Ok);
    assert_eq!(reply.unwrap().partial_success.unwrap().rejected_spans, 1);
    assert!(sink.encoded.lock().unwrap().is_empty());
    let decoded = sink.decoded.lock().unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].1, 7);
}

#[tokio::test]
async fn a_sink_that_declines_gets_the_decoded_request() {
    let sink = Recording {
        decline: true,
        ..Default::default()
    };
    let bytes = corpus(8);
    assert_eq!(grpc(&sink, &bytes).await.0, tonic::Code::Ok);
    let decoded = sink.decoded.lock().unwrap();
    assert_eq!(
        decoded[0].0,
        ExportTraceServiceRequest::decode(&bytes[..]).unwrap()
    );
}

#[tokio::test]
async fn bytes_prost_refuses_are_invalid_argument_on_both_paths() {
    // A span name that is not UTF-8 (the bounds scan does not look at
    // strings; the view and prost both refuse it).
    let mut bytes = corpus(1);
    let at = bytes.windows(3).position(|w| w == b"GET").unwrap();
    bytes[at] = 0xff;
    let sink = Recording::default();
    assert_eq!(grpc(&sink, &bytes).await.0, tonic::Code::InvalidArgument);
    assert!(sink.encoded.lock().unwrap().is_empty());
    assert!(sink.decoded.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_full_sink_refuses_before_reading_with_a_retry_hint() {
    let sink = Recording {
        full: true,
        ..Default::default()
    };
    let metrics = ReceiverMetrics::default();
    let svc = crate::grpc::service(sink.clone(), Limits::default(), metrics.clone());
    let resp = svc
        .oneshot(
            Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
                .header(header::CONTENT_TYPE, "application/grpc")
                .body(Body::from(grpc_frame(&corpus(8))))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let trailers = body.collect().await.unwrap().trailers().cloned();
    let status = tonic::Status::from_header_map(&parts.headers)
        .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map))
        .unwrap();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    assert!(status.get_details_retry_info().is_some(), "a retry hint");
    assert!(sink.encoded.lock().unwrap().is_empty());
    assert!(sink.decoded.lock().unwrap().is_empty());

    // OTLP/HTTP protobuf: 429 with Retry-After.
    let app = crate::http::otlp_router(sink.clone(), Limits::default(), metrics);
    let resp = app
        .oneshot(
            Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .body(Body::from(corpus(8)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    assert!(sink.encoded.lock().unwrap().is_empty());
}
