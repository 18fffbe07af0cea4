//! OTLP gRPC `TraceService/Export`: the service and its server.

use model::ServiceErrorCode;
use proto::otlp::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse, TraceService,
};
use telemetry::Shutdown;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status, transport::Server};
use tonic_types::{ErrorDetails, StatusExt};

pub use crate::trace_server::TraceServer;
use crate::{Limits, ReceiveError, ReceiverMetrics, Sink, inflight_limit, outcome::deliver};

const PROTOCOL: &str = "otlp_grpc";

/// The `TraceService` implementation; build the server with [`service`].
#[derive(Debug, Clone)]
pub struct OtlpGrpc<S> {
    sink: S,
    metrics: ReceiverMetrics,
}

/// The `TraceService` server with gzip accepted, the message size capped
/// at `limits.max_decompressed_bytes` and what it decodes into at
/// `limits.decode`, checked before decoding (RESOURCE_EXHAUSTED beyond).
pub fn service<S: Sink>(
    sink: S,
    limits: Limits,
    metrics: ReceiverMetrics,
) -> TraceServer<OtlpGrpc<S>> {
    TraceServer::new(
        OtlpGrpc {
            sink,
            metrics: metrics.clone(),
        },
        limits.decode,
        limits.max_decompressed_bytes,
        metrics,
    )
}

/// Serves the OTLP gRPC receiver ([`service`] behind [`inflight_limit`])
/// on `listener` as a task of `owner`, until `owner` is cancelled
/// (gracefully: requests in flight finish). A failure is logged.
pub fn serve<S: Sink>(
    owner: &Shutdown,
    listener: TcpListener,
    sink: S,
    limits: Limits,
    metrics: ReceiverMetrics,
) {
    let grpc = service(sink, limits, metrics);
    let token = owner.token().clone();
    owner.spawn(async move {
        let res = Server::builder()
            .layer(inflight_limit())
            .add_service(grpc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), token.cancelled_owned())
            .await;
        if let Err(error) = res {
            tracing::error!(%error, "otlp grpc server failed");
        }
    });
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
