//! OTLP gRPC `TraceService/Export`: the service and its server.
//!
//! The server has the settings every gRPC server shares
//! (`telemetry::serve::grpc`) and a `MessageBudgetLayer`: messages being
//! received hold their declared bytes, at most one message's limit per
//! connection and [`crate::reading_budget`] in total (RESOURCE_EXHAUSTED +
//! RetryInfo beyond). A decoded request then waits for one of the
//! [`crate::MAX_INFLIGHT_REQUESTS`] slots, so a slow sender holds no slot.

use std::{net::SocketAddr, sync::Arc};

use model::ServiceErrorCode;
use proto::otlp::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use telemetry::{
    Shutdown,
    serve::{MessageBudget, MessageBudgetLayer, Refusal, Refuse, grpc as settings},
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{
    Code, Request, Response, Status,
    transport::{Server, server::TcpConnectInfo},
};
use tonic_types::{ErrorDetails, StatusExt};

pub use crate::trace_server::{Encoded, ExportEncoded, TraceServer};
use crate::{InflightLimit, Limits, ReceiveError, ReceiverMetrics, Sink, outcome::deliver_encoded};

/// Requests in flight per server, from their headers to their reply
/// (beyond: RESOURCE_EXHAUSTED + RetryInfo at once). Their bytes are bounded
/// by the budget; this bounds their count.
const MAX_REQUESTS: usize = 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PROTOCOL: &str = "otlp_grpc";

/// The `TraceService` implementation; build the server with [`service`].
#[derive(Debug, Clone)]
pub struct OtlpGrpc<S> {
    sink: S,
    metrics: ReceiverMetrics,
    /// Taken once the message is decoded, for delivering it.
    inflight: InflightLimit,
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
            inflight: InflightLimit::default(),
        },
        limits.decode,
        limits.max_decompressed_bytes,
        metrics,
        crate::limits::decoded_budget(&limits),
    )
}

/// Serves the OTLP gRPC receiver ([`service`] behind its byte budget) on
/// `listener` as a task of `owner`, until `owner` is cancelled
/// (gracefully: requests in flight finish). A failure is logged.
pub fn serve<S: Sink>(
    owner: &Shutdown,
    listener: TcpListener,
    sink: S,
    limits: Limits,
    metrics: ReceiverMetrics,
) {
    let grpc = service(sink, limits, metrics);
    let budget = MessageBudget::new(
        limits.max_decompressed_bytes as u64 + 5,
        crate::reading_budget(&limits),
        MAX_REQUESTS,
    );
    let token = owner.token().clone();
    owner.spawn(async move {
        let res = Server::builder()
            .http2_keepalive_interval(Some(settings::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(settings::KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(settings::MAX_STREAMS_PER_CONNECTION)
            .initial_stream_window_size(settings::STREAM_WINDOW)
            .initial_connection_window_size(settings::CONNECTION_WINDOW)
            .timeout(settings::REQUEST_TIMEOUT)
            .layer(MessageBudgetLayer::new(budget, peer_of, refuse()))
            .add_service(grpc)
            .add_service(crate::absent::MetricsAbsent)
            .add_service(crate::absent::LogsAbsent)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), token.cancelled_owned())
            .await;
        if let Err(error) = res {
            tracing::error!(%error, "otlp grpc server failed");
        }
    });
}

fn peer_of(ext: &http::Extensions) -> Option<SocketAddr> {
    ext.get::<TcpConnectInfo>().and_then(|i| i.remote_addr())
}

/// A budget refusal: RESOURCE_EXHAUSTED with RetryInfo.
fn refuse() -> Refuse {
    Arc::new(|refusal: Refusal| -> BoxError {
        Box::new(Status::with_error_details(
            Code::ResourceExhausted,
            refusal.to_string(),
            ErrorDetails::with_retry_info(Some(settings::RETRY_AFTER)),
        ))
    })
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

impl<S: Sink> ExportEncoded for OtlpGrpc<S> {
    async fn export(
        &self,
        request: Request<Encoded>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let Encoded { bytes, spans } = request.into_inner();
        let _slot = match self.inflight.acquire().await {
            Ok(slot) => slot,
            Err(e) => {
                self.metrics.request(PROTOCOL, e.outcome());
                return Err(status_of(&e));
            }
        };
        match deliver_encoded(&self.sink, &self.metrics, PROTOCOL, bytes, spans).await {
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
