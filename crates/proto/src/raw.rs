//! OTLP `TraceService/Export` with a pre-encoded request body.
//!
//! Buffered records are already encoded `ExportTraceServiceRequest`s, and
//! concatenated encodings of one message merge into one (protobuf appends
//! repeated fields), so a batch of records is sent as the concatenation of
//! their bytes: nothing is decoded or re-encoded on the way out.
//!
//! The unary call is framed here rather than by `tonic::client::Grpc`
//! because tonic compresses with gzip level 6 only (a FIXME in tonic 0.14);
//! OTLP exporters compress with a fast level, and at level 6 compression
//! costs more CPU than everything else the agent does. The request goes
//! through the same tonic `Channel` (HTTP/2, connection reuse, TLS).

use std::{io::Write, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::Message;
use tonic::{Code, Status, transport::Channel};
use tower::ServiceExt;

use crate::otlp::ExportTraceServiceResponse;

/// The gRPC path of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Largest response accepted.
const MAX_RESPONSE: usize = 1 << 20;

/// A trace-export client sending pre-encoded requests.
#[derive(Debug, Clone)]
pub struct RawExportClient {
    channel: Channel,
    gzip: Option<flate2::Compression>,
}

impl RawExportClient {
    /// `gzip`: compress requests at level 1 (what OTLP exporters default to
    /// is gzip; the level is ours).
    pub fn new(channel: Channel, gzip: bool) -> Self {
        Self {
            channel,
            gzip: gzip.then(flate2::Compression::fast),
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    pub async fn export(
        &mut self,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<ExportTraceServiceResponse, Status> {
        let (flag, payload) = match self.gzip {
            Some(level) => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), level);
                enc.write_all(&body)
                    .and_then(|()| enc.finish())
                    .map(|v| (1u8, Bytes::from(v)))
                    .map_err(|e| Status::internal(format!("gzip failed: {e}")))?
            }
            None => (0u8, body),
        };
        let len = u32::try_from(payload.len())
            .map_err(|_| Status::invalid_argument("request above 4 GiB"))?;
        let mut framed = BytesMut::with_capacity(5 + payload.len());
        framed.put_u8(flag);
        framed.put_u32(len);
        framed.put_slice(&payload);
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(EXPORT_PATH)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header("grpc-accept-encoding", "identity");
        if flag == 1 {
            req = req.header("grpc-encoding", "gzip");
        }
        if let Some(t) = timeout {
            req = req.header("grpc-timeout", format!("{}m", t.as_millis().max(1)));
        }
        let req = req
            .body(tonic::body::Body::new(http_body_util::Full::new(
                framed.freeze(),
            )))
            .map_err(|e| Status::internal(format!("building the request: {e}")))?;
        let resp = self
            .channel
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| Status::unavailable(format!("export endpoint: {e}")))?;
        let (parts, body) = resp.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(Status::new(
                http_code(parts.status),
                format!("export endpoint answered HTTP {}", parts.status),
            ));
        }
        // Trailers-only answer: the status is in the headers.
        if let Some(status) = Status::from_header_map(&parts.headers)
            && status.code() != Code::Ok
        {
            return Err(status);
        }
        let collected = http_body_util::Limited::new(body, MAX_RESPONSE + 5)
            .collect()
            .await
            .map_err(|e| Status::unavailable(format!("reading the export response: {e}")))?;
        if let Some(status) = collected.trailers().and_then(Status::from_header_map)
            && status.code() != Code::Ok
        {
            return Err(status);
        }
        let bytes = collected.to_bytes();
        let msg = bytes.get(5..).unwrap_or_default();
        if bytes.first() == Some(&1) {
            return Err(Status::internal(
                "compressed export responses are not accepted",
            ));
        }
        ExportTraceServiceResponse::decode(msg)
            .map_err(|e| Status::internal(format!("invalid export response: {e}")))
    }
}

/// gRPC's mapping of HTTP statuses seen instead of a gRPC answer.
fn http_code(s: http::StatusCode) -> Code {
    match s.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}
