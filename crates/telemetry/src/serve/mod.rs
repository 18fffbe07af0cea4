//! Server start-up, shared by every port of both binaries: bind (the error
//! names the port), then serve as a task of a [`Shutdown`] until it is
//! cancelled, gracefully (requests in flight finish).
//!
//! - [`http`]: HTTP/1.1 with a header-read deadline and a body deadline
//!   ([`HEADER_READ_TIMEOUT`], [`BODY_TIMEOUT`]), for every axum router;
//!   [`https`] the same over TLS, with a handshake deadline
//!   ([`HANDSHAKE_TIMEOUT`]);
//! - [`grpc`]: the settings every tonic server shares (HTTP/2 keepalive,
//!   streams per connection, windows, request timeout) and
//!   [`MessageBudgetLayer`], which bounds the bytes of gRPC messages held
//!   before they are decoded, per connection and in total. The OTLP gRPC
//!   receiver's own serve is `receiver::grpc::serve`; the mTLS ports add
//!   `mtls::incoming`'s handshake bounds.
//!
//! ARCHITECTURE.md, "Server limits", lists every server with its bounds.

mod deadline;
pub mod grpc;
mod http;
mod message_budget;

pub use deadline::{BodyTimeout, DeadlineBody, is_body_timeout};
pub use http::{
    BODY_TIMEOUT, Deadlines, HANDSHAKE_TIMEOUT, HEADER_READ_TIMEOUT, MAX_HANDSHAKES, http,
    http_with, https,
};
pub use message_budget::{
    BudgetBody, MessageBudget, MessageBudgetLayer, MessageBudgetService, PeerOf, Refusal, Refuse,
};

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A port that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {what}: {source}")]
pub struct BindError {
    /// The port's name in logs and errors (`"otlp grpc"`, `"admin"`, …).
    pub what: &'static str,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` for `what`; returns the listener and the address it is
/// bound to (the port the system chose when `addr`'s is 0).
pub async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let err = |source| BindError { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_port_zero_and_names_the_port() {
        let (_listener, addr) = bind("test", "127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("binds");
        assert_ne!(addr.port(), 0, "the bound port is returned");
        let taken = bind("again", addr).await.expect_err("the port is taken");
        assert!(taken.to_string().contains("for again"), "{taken}");
    }
}
