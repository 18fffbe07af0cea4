//! Server start-up, shared by every port of both binaries: bind (the error
//! names the port), then serve as a task of a [`Shutdown`] until it is
//! cancelled, gracefully (requests in flight finish). The OTLP gRPC
//! receiver's own serve is `receiver::grpc::serve`.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::Shutdown;

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

/// Serves `router` on `listener` as a task of `owner` until `owner` is
/// cancelled; a failure is logged with `what`.
pub fn http(owner: &Shutdown, what: &'static str, listener: TcpListener, router: axum::Router) {
    let token = owner.token().clone();
    owner.spawn(async move {
        let res = axum::serve(listener, router)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
        if let Err(error) = res {
            tracing::error!(%error, server = what, "http server failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn binds_port_zero_and_stops_with_its_owner() {
        let (listener, addr) = bind("test", "127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("binds");
        assert_ne!(addr.port(), 0, "the bound port is returned");
        let taken = bind("again", addr).await.expect_err("the port is taken");
        assert!(taken.to_string().contains("for again"), "{taken}");
        let owner = Shutdown::new();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        http(&owner, "test", listener, router);
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("serving");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("writes");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("reads");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(owner.shutdown(Duration::from_secs(10)).await);
    }
}
