//! The tonic server of an mTLS port (federation, Raft): the gRPC settings
//! every server shares (`telemetry::serve::grpc`: keepalive, streams per
//! connection, windows, request timeout) and a
//! [`MessageBudgetLayer`] keyed by the TLS peer's address, whose refusals
//! are RESOURCE_EXHAUSTED with `google.rpc.RetryInfo`. Serve it with
//! [`crate::incoming`] for the handshake bounds.

use std::{net::SocketAddr, sync::Arc};

use telemetry::serve::{MessageBudget, MessageBudgetLayer, Refusal, Refuse, grpc};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
use tonic::{
    Code, Status,
    transport::{
        Server,
        server::{TcpConnectInfo, TlsConnectInfo},
    },
};
use tonic_types::{ErrorDetails, StatusExt};
use tower::layer::util::{Identity, Stack};

/// The server [`server`] builds; add services to it.
pub type MtlsServer = Server<Stack<MessageBudgetLayer, Identity>>;

/// A tonic server with the shared settings, bounded by `budget`.
pub fn server(budget: MessageBudget) -> MtlsServer {
    Server::builder()
        .http2_keepalive_interval(Some(grpc::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(grpc::KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(grpc::MAX_STREAMS_PER_CONNECTION)
        .initial_stream_window_size(grpc::STREAM_WINDOW)
        .initial_connection_window_size(grpc::CONNECTION_WINDOW)
        .timeout(grpc::REQUEST_TIMEOUT)
        .layer(MessageBudgetLayer::new(budget, peer_of, refuse()))
}

/// The peer of a request on an mTLS port.
fn peer_of(ext: &http::Extensions) -> Option<SocketAddr> {
    ext.get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.get_ref().remote_addr())
}

/// RESOURCE_EXHAUSTED with the refusal and a retry hint.
pub fn refuse() -> Refuse {
    Arc::new(|refusal: Refusal| -> BoxError {
        Box::new(Status::with_error_details(
            Code::ResourceExhausted,
            refusal.to_string(),
            ErrorDetails::with_retry_info(Some(grpc::RETRY_AFTER)),
        ))
    })
}
