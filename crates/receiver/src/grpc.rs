//! OTLP gRPC `TraceService/Export`.

use model::ServiceErrorCode;
use proto::otlp::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse, TraceService,
    TraceServiceServer,
};
use tonic::{Code, Request, Response, Status, codec::CompressionEncoding};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{Limits, ReceiveError, ReceiverMetrics, Sink, outcome::deliver};

const PROTOCOL: &str = "otlp_grpc";

/// The `TraceService` implementation; build the server with [`service`].
#[derive(Debug, Clone)]
pub struct OtlpGrpc<S> {
    sink: S,
    metrics: ReceiverMetrics,
}

/// A `TraceServiceServer` with gzip accepted and the decoded message size
/// capped at `limits.max_decompressed_bytes` (RESOURCE_EXHAUSTED beyond).
pub fn service<S: Sink>(
    sink: S,
    limits: Limits,
    metrics: ReceiverMetrics,
) -> TraceServiceServer<OtlpGrpc<S>> {
    TraceServiceServer::new(OtlpGrpc { sink, metrics })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limits.max_decompressed_bytes)
}

/// Maps a refusal to the status OTLP clients understand: retryable ones
/// carry `google.rpc.RetryInfo`.
pub fn status_of(err: &ReceiveError) -> Status {
    let msg = err.to_string();
    match (err.code(), err.retry_after()) {
        (ServiceErrorCode::Overloaded, Some(d)) => Status::with_error_details(
            Code::ResourceExhausted,
            msg,
            ErrorDetails::with_retry_info(Some(d)),
        ),
        (ServiceErrorCode::Unavailable, Some(d)) => Status::with_error_details(
            Code::Unavailable,
            msg,
            ErrorDetails::with_retry_info(Some(d)),
        ),
        (code, _) => Status::new(grpc_code(code), msg),
    }
}

/// One mapping from [`ServiceErrorCode`] to gRPC.
pub fn grpc_code(code: ServiceErrorCode) -> Code {
    match code {
        ServiceErrorCode::BadRequest => Code::InvalidArgument,
        ServiceErrorCode::Unauthenticated => Code::Unauthenticated,
        ServiceErrorCode::PermissionDenied => Code::PermissionDenied,
        ServiceErrorCode::NotFound => Code::NotFound,
        ServiceErrorCode::TooLarge | ServiceErrorCode::Overloaded => Code::ResourceExhausted,
        ServiceErrorCode::Unavailable => Code::Unavailable,
        ServiceErrorCode::Internal => Code::Internal,
    }
}

#[tonic::async_trait]
impl<S: Sink> TraceService for OtlpGrpc<S> {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let req = request.into_inner();
        match deliver(&self.sink, &self.metrics, PROTOCOL, req).await {
            Ok(r) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (r.rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: r.rejected as i64,
                    error_message: r.message.unwrap_or_default(),
                }),
            })),
            Err(e) => {
                tracing::debug!(error = %e, "otlp grpc export refused");
                Err(status_of(&e))
            }
        }
    }
}
