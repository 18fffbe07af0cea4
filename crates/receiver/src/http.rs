//! OTLP/HTTP `POST /v1/traces` and Zipkin v2 `POST /api/v2/spans` (JSON,
//! or proto3 `ListOfSpans` as `application/x-protobuf`). Bodies may be
//! `Content-Encoding: gzip` or `deflate` (zlib, or raw deflate).
//!
//! A request's life: its body is read within the wire limit and the body
//! deadline (served by `telemetry::serve::http`: 408 when the body is too
//! slow), its bytes held against the receiver's reading budget (429 when
//! full); only then does it wait for one of the [`MAX_INFLIGHT_REQUESTS`]
//! slots to inflate, decode and deliver. A client trickling its body holds
//! bytes it sent, never a slot.
//!
//! [`MAX_INFLIGHT_REQUESTS`]: crate::MAX_INFLIGHT_REQUESTS

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, post},
};
use http_body_util::BodyExt;
use prost::Message;
use proto::{
    RpcStatus,
    otlp::{ExportTracePartialSuccess, ExportTraceServiceResponse},
};

use telemetry::budget::{ByteBudget, Reservation};

use crate::{
    InflightLimit, Limits, ReceiveError, ReceiverMetrics, Sink,
    outcome::{deliver, deliver_encoded},
};

/// Body bytes are reserved from the reading budget in steps of at least
/// this much (fewer, larger reservations).
const RESERVE_STEP: u64 = 64 << 10;

#[derive(Debug, Clone)]
struct HttpState<S> {
    sink: S,
    limits: Limits,
    metrics: ReceiverMetrics,
    /// Taken after the body is read, for inflating, decoding, delivering.
    inflight: InflightLimit,
    /// Bytes of bodies being read or held (full: 429).
    reading: ByteBudget,
}

impl<S> HttpState<S> {
    fn new(sink: S, limits: Limits, metrics: ReceiverMetrics) -> Self {
        Self {
            sink,
            limits,
            metrics,
            inflight: InflightLimit::default(),
            reading: crate::reading_budget(&limits),
        }
    }
}

/// `POST /v1/traces` (OTLP/HTTP); `/v1/metrics` and `/v1/logs` answer
/// 404 ([`crate::absent`]).
pub fn otlp_router<S: Sink>(sink: S, limits: Limits, metrics: ReceiverMetrics) -> Router {
    Router::new()
        .route("/v1/traces", post(otlp_traces::<S>))
        .route(
            "/v1/metrics",
            any(|| async { crate::absent::http("metrics") }),
        )
        .route("/v1/logs", any(|| async { crate::absent::http("logs") }))
        .with_state(HttpState::new(sink, limits, metrics))
}

/// `POST /api/v2/spans` (Zipkin v2 JSON).
pub fn zipkin_router<S: Sink>(sink: S, limits: Limits, metrics: ReceiverMetrics) -> Router {
    Router::new()
        .route("/api/v2/spans", post(zipkin_spans::<S>))
        .with_state(HttpState::new(sink, limits, metrics))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim())
}

/// A body read to its end, with its bytes held against the reading budget
/// until it is dropped.
struct ReadBody {
    bytes: Vec<u8>,
    _held: Vec<Reservation>,
}

/// Reads the body within the wire limit and the reading budget.
async fn read_body(
    limits: &Limits,
    reading: &ByteBudget,
    headers: &HeaderMap,
    body: Body,
) -> Result<ReadBody, ReceiveError> {
    let limit = limits.max_request_bytes;
    let too_large =
        || ReceiveError::TooLarge(format!("request body exceeds the limit of {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > limit as u64) {
        return Err(ReceiveError::TooLarge(format!(
            "request body of {len} bytes exceeds the limit of {limit} bytes"
        )));
    }
    let mut body = body;
    let mut bytes = Vec::with_capacity(declared.map_or(0, |d| d as usize).min(limit));
    let mut held = Vec::new();
    let mut reserved = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if telemetry::serve::is_body_timeout(&e) {
                ReceiveError::BodyTimeout(e.to_string())
            } else if is_length_limit(&e) {
                too_large()
            } else {
                ReceiveError::BadRequest(format!("could not read request body: {e}"))
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&data);
        let len = bytes.len() as u64;
        if len > reserved {
            let step = (len - reserved).max(RESERVE_STEP);
            held.push(reading.try_reserve(step).ok_or_else(|| {
                ReceiveError::Busy(format!(
                    "the receiver holds {} bytes of request bodies; retry",
                    reading.capacity()
                ))
            })?);
            reserved += step;
        }
    }
    Ok(ReadBody { bytes, _held: held })
}

/// Inflates a body read by [`read_body`] when gzip-encoded.
fn inflate(limits: &Limits, headers: &HeaderMap, bytes: Vec<u8>) -> Result<Vec<u8>, ReceiveError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => {
            if bytes.len() > limits.max_decompressed_bytes {
                return Err(ReceiveError::TooLarge(format!(
                    "request body exceeds {} bytes",
                    limits.max_decompressed_bytes
                )));
            }
            Ok(bytes)
        }
        Some("gzip") | Some("x-gzip") => limits.gunzip(&bytes),
        Some("deflate") => limits.inflate_deflate(&bytes),
        Some(other) => Err(ReceiveError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {other:?}: use gzip, deflate or none"
        ))),
    }
}

/// Reads the body, then waits for an in-flight slot, then inflates it: the
/// bytes and the slot are held until the returned guard drops.
async fn receive<S>(
    st: &HttpState<S>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Vec<u8>, Held), ReceiveError> {
    let read = read_body(&st.limits, &st.reading, headers, body).await?;
    let slot = st.inflight.acquire().await?;
    let raw = inflate(&st.limits, headers, read.bytes)?;
    Ok((
        raw,
        Held {
            _slot: slot,
            _bytes: read._held,
        },
    ))
}

/// What a request holds while it is decoded and delivered.
struct Held {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _bytes: Vec<Reservation>,
}

fn is_length_limit(err: &axum::Error) -> bool {
    // The router's own body limit, when a caller adds one.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

fn http_status(err: &ReceiveError) -> StatusCode {
    match err {
        ReceiveError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ReceiveError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        ReceiveError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        other => StatusCode::from_u16(other.code().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// An error reply: `google.rpc.Status` in the request's encoding, plus
/// `Retry-After` (seconds) on retryable refusals.
fn error_response(err: &ReceiveError, encoding: Encoding) -> Response {
    let status = http_status(err);
    let body = RpcStatus {
        code: crate::grpc::grpc_code(err.code()) as i32,
        message: err.to_string(),
    };
    let mut resp = match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response(),
    };
    if let Some(after) = err.retry_after() {
        let secs = after.max(Duration::from_secs(1)).as_secs();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

async fn otlp_traces<S: Sink>(
    State(st): State<HttpState<S>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match content_type(&headers) {
        Some("application/x-protobuf") | Some("application/protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        other => {
            let err = ReceiveError::UnsupportedMediaType(format!(
                "unsupported Content-Type {:?}: use application/x-protobuf or application/json",
                other.unwrap_or("")
            ));
            st.metrics.request("otlp_http", "rejected");
            return error_response(&err, Encoding::Json);
        }
    };
    // Protobuf is scanned, then delivered encoded (the sink may decode
    // it); JSON is decoded here.
    enum Payload {
        Encoded(bytes::Bytes, usize),
        Decoded(proto::otlp::ExportTraceServiceRequest),
    }
    let decoded = async {
        let (raw, held) = receive(&st, &headers, body).await?;
        match encoding {
            Encoding::Protobuf => proto::bounds::check_protobuf(
                &raw,
                &proto::bounds::Schema::EXPORT_TRACE,
                &st.limits.decode,
            )
            .map(|found| Payload::Encoded(bytes::Bytes::from(raw), found.spans))
            .map_err(proto::otlp::DecodeError::from),
            Encoding::Json => {
                proto::otlp::decode_json(&raw, &st.limits.decode).map(Payload::Decoded)
            }
        }
        .map(|b| (b, held))
        .map_err(|e| {
            if e.is_too_large() {
                ReceiveError::TooLarge(e.to_string())
            } else {
                ReceiveError::BadRequest(e.to_string())
            }
        })
    }
    .await;
    // `deliver` counts its own outcomes; count refusals before it here.
    let result = match decoded {
        Ok((Payload::Decoded(req), _held)) => {
            deliver(&st.sink, &st.metrics, "otlp_http", req).await
        }
        Ok((Payload::Encoded(bytes, spans), _held)) => {
            deliver_encoded(&st.sink, &st.metrics, "otlp_http", bytes, spans).await
        }
        Err(e) => {
            st.metrics.request("otlp_http", "rejected");
            Err(e)
        }
    };
    match result {
        Ok(r) => {
            let resp = ExportTraceServiceResponse {
                partial_success: (r.rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: r.rejected as i64,
                    error_message: r.message.unwrap_or_default(),
                }),
            };
            match encoding {
                Encoding::Protobuf => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    resp.encode_to_vec(),
                )
                    .into_response(),
                Encoding::Json => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
                )
                    .into_response(),
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "otlp http export refused");
            error_response(&e, encoding)
        }
    }
}

async fn zipkin_spans<S: Sink>(
    State(st): State<HttpState<S>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let decoded = async {
        let encoding = match content_type(&headers) {
            None | Some("application/json") | Some("text/plain") => Encoding::Json,
            Some("application/x-protobuf") | Some("application/protobuf") => Encoding::Protobuf,
            Some(other) => {
                return Err(ReceiveError::UnsupportedMediaType(format!(
                    "unsupported Content-Type {other:?}: Meridian accepts Zipkin v2 JSON (application/json) or proto3 (application/x-protobuf)"
                )));
            }
        };
        let (raw, held) = receive(&st, &headers, body).await?;
        match encoding {
            Encoding::Json => proto::zipkin::decode_json(&raw, &st.limits.decode),
            Encoding::Protobuf => proto::zipkin::proto3::decode(&raw, &st.limits.decode),
        }
            .map(|spans| (spans, held))
            .map_err(|e| {
                if e.is_too_large() {
                    ReceiveError::TooLarge(e.to_string())
                } else {
                    ReceiveError::BadRequest(e.to_string())
                }
            })
    }
    .await;
    let result = match decoded {
        Ok((spans, _held)) => {
            deliver(
                &st.sink,
                &st.metrics,
                "zipkin",
                proto::zipkin::to_otlp(spans),
            )
            .await
        }
        Err(e) => {
            st.metrics.request("zipkin", "rejected");
            Err(e)
        }
    };
    match result {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "zipkin post refused");
            error_response(&e, Encoding::Json)
        }
    }
}
