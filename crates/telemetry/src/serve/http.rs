//! HTTP/1.1 serving with deadlines. `axum::serve` sets no timer: a client
//! that sends its headers a byte at a time, or never finishes its body,
//! holds its connection (and whatever the handler holds) for ever. Here
//! every connection is served by hyper's HTTP/1 builder with a
//! header-read deadline, and every request body is wrapped in a
//! [`DeadlineBody`]:
//!
//! - headers: a request's headers must arrive within [`HEADER_READ_TIMEOUT`]
//!   of the server starting to wait for them (a new connection, or an idle
//!   keep-alive one); beyond it hyper closes the connection;
//! - body: the whole body must arrive within [`BODY_TIMEOUT`] of its
//!   headers; beyond it reading the body fails with [`BodyTimeout`]. The
//!   span receivers answer 408 Request Timeout (`receiver::http`); other
//!   handlers answer as their extractor does on a body error (400), and
//!   hyper closes a connection whose body was not read to its end.
//!
//! - TLS ([`https`]): the handshake must end within [`HANDSHAKE_TIMEOUT`]
//!   of the connect (then the header deadline starts); a failed or slow
//!   handshake closes the connection; at most [`MAX_HANDSHAKES`] are in
//!   progress at once (beyond, accept waits). ALPN offers `http/1.1` only.
//!
//! Every request carries its TCP peer as an
//! `axum::extract::ConnectInfo<SocketAddr>` extension (the access layer's
//! trusted-proxy check reads it).
//!
//! HTTP/2 is not served on these ports (no client of ours uses it, and its
//! preface has no deadline in hyper); an HTTP/2 preface gets an HTTP/1
//! error.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, body::Body, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::DeadlineBody;
use crate::Shutdown;

/// Time a client has to send a request's headers (from connect, or from the
/// end of its previous response on a keep-alive connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's whole body, from its headers. At
/// the default 8 MiB body limit this asks for ≈ 280 KiB/s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client has to finish its TLS handshake, from connect ([`https`]).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once on one [`https`] server; beyond, the
/// accept loop waits (full policy: block accept, further clients wait in
/// the kernel backlog), so silent connects cost at most this many tasks.
pub const MAX_HANDSHAKES: usize = 256;

/// The deadlines of one HTTP server ([`Deadlines::default`]: the constants
/// above; tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub header: Duration,
    pub body: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            header: HEADER_READ_TIMEOUT,
            body: BODY_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` as a task of `owner` until `owner` is
/// cancelled, with the default [`Deadlines`]; a failure is logged with
/// `what`.
pub fn http(owner: &Shutdown, what: &'static str, listener: TcpListener, router: Router) {
    http_with(owner, what, listener, router, Deadlines::default());
}

/// [`http`] with explicit deadlines. At cancellation the server stops
/// accepting, idle connections close, and requests in flight finish (each
/// within its own deadlines); every connection is a task of `owner`, so its
/// `shutdown` waits for them.
pub fn http_with(
    owner: &Shutdown,
    what: &'static str,
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
) {
    serve(owner, what, listener, router, deadlines, None);
}

/// [`http_with`] over TLS with `config` (no client certificate asked for):
/// each connection's handshake must end within `handshake`
/// ([`HANDSHAKE_TIMEOUT`] in production) before the header deadline
/// starts. `config`'s ALPN is replaced by `http/1.1` (HTTP/1 only).
pub fn https(
    owner: &Shutdown,
    what: &'static str,
    listener: TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
    deadlines: Deadlines,
    handshake: Duration,
) {
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        handshake,
        slots: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
    };
    serve(owner, what, listener, router, deadlines, Some(tls));
}

#[derive(Clone)]
struct Tls {
    acceptor: TlsAcceptor,
    handshake: Duration,
    /// Handshakes in progress ([`MAX_HANDSHAKES`]).
    slots: Arc<Semaphore>,
}

fn serve(
    owner: &Shutdown,
    what: &'static str,
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    tls: Option<Tls>,
) {
    let sd = owner.clone();
    owner.spawn(async move {
        let token = sd.token().clone();
        loop {
            let (tcp, peer) = tokio::select! {
                _ = token.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, mostly: wait, do not spin.
                        tracing::warn!(%error, server = what, "http accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let conn = Conn {
                peer,
                router: router.clone(),
                deadlines,
                token: token.clone(),
                what,
            };
            match &tls {
                None => drop(sd.spawn(conn.serve(tcp))),
                Some(tls) => {
                    let slot = tokio::select! {
                        _ = token.cancelled() => return,
                        slot = Arc::clone(&tls.slots).acquire_owned() => match slot {
                            Ok(slot) => slot,
                            Err(_) => return,
                        },
                    };
                    drop(sd.spawn(conn.handshake_then_serve(tls.clone(), slot, tcp)));
                }
            }
        }
    });
}

/// One accepted connection.
struct Conn {
    peer: SocketAddr,
    router: Router,
    deadlines: Deadlines,
    token: CancellationToken,
    what: &'static str,
}

impl Conn {
    async fn handshake_then_serve(self, tls: Tls, slot: OwnedSemaphorePermit, tcp: TcpStream) {
        let handshake = tokio::time::timeout(tls.handshake, tls.acceptor.accept(tcp));
        let stream = tokio::select! {
            _ = self.token.cancelled() => return,
            r = handshake => match r {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    // A client that does not trust our certificate, or
                    // plain HTTP to a TLS port: the client's fault.
                    tracing::debug!(%error, peer = %self.peer, server = self.what, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %self.peer, server = self.what, "tls handshake timed out");
                    return;
                }
            },
        };
        drop(slot);
        self.serve(stream).await;
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            peer,
            router,
            deadlines,
            token,
            what,
        } = self;
        let body_deadline = deadlines.body;
        let svc = tower::util::MapRequest::new(router, move |req: http::Request<Incoming>| {
            let mut req = req.map(|b| Body::new(DeadlineBody::new(b, body_deadline)));
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(deadlines.header);
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        let mut conn = std::pin::pin!(conn);
        let res = tokio::select! {
            res = conn.as_mut() => res,
            _ = token.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(error) = res {
            // Header timeouts, resets, malformed requests: the client's fault.
            tracing::debug!(%error, server = what, "http connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::serve::{bind, is_body_timeout};

    const SHORT: Deadlines = Deadlines {
        header: Duration::from_millis(300),
        body: Duration::from_millis(300),
    };
    /// How long a test waits for the server to act on a deadline before it
    /// fails (a correctness bound, far above the deadlines).
    const PATIENCE: Duration = Duration::from_secs(10);

    async fn server(deadlines: Deadlines) -> (Shutdown, std::net::SocketAddr) {
        let (listener, addr) = bind("test", "127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("binds");
        let owner = Shutdown::new();
        let router = Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/echo",
                axum::routing::post(|body: Body| async move {
                    match axum::body::to_bytes(body, 1 << 20).await {
                        Ok(b) => (http::StatusCode::OK, b.len().to_string()),
                        Err(e) if is_body_timeout(&e) => {
                            (http::StatusCode::REQUEST_TIMEOUT, "slow".to_owned())
                        }
                        Err(e) => (http::StatusCode::BAD_REQUEST, e.to_string()),
                    }
                }),
            );
        http_with(&owner, "test", listener, router, deadlines);
        (owner, addr)
    }

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await;
        String::from_utf8_lossy(&reply).into_owned()
    }

    #[tokio::test]
    async fn serves_and_stops_with_its_owner() {
        let (owner, addr) = server(Deadlines::default()).await;
        let mut stream = TcpStream::connect(addr).await.expect("serving");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("writes");
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        // An idle keep-alive connection does not hold the shutdown up.
        let _idle = TcpStream::connect(addr).await.expect("serving");
        assert!(owner.shutdown(Duration::from_secs(10)).await);
    }

    /// Failed before: `axum::serve` kept a connection whose headers never
    /// ended open for as long as the client liked.
    #[tokio::test]
    async fn headers_that_never_end_close_the_connection() {
        let (owner, addr) = server(SHORT).await;
        let mut stream = TcpStream::connect(addr).await.expect("serving");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("writes");
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the connection is closed after the header deadline: {closed:?}"
        );
        // A silent connection is closed the same way.
        let mut silent = TcpStream::connect(addr).await.expect("serving");
        let closed = tokio::time::timeout(PATIENCE, silent.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(owner.shutdown(Duration::from_secs(10)).await);
    }

    /// A self-signed certificate for localhost: the server config and the
    /// client config that trusts it.
    fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        crate::install_crypto_provider();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let der = cert.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .expect("a server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("a root");
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// HTTPS: a request over TLS is served and carries its TCP peer; a
    /// client that never starts its handshake is closed at the handshake
    /// deadline; plain HTTP gets no HTTP answer.
    #[tokio::test]
    async fn https_serves_with_a_handshake_deadline_and_the_peer_address() {
        let (server_tls, client_tls) = tls_pair();
        let (listener, addr) = bind("test", "127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("binds");
        let owner = Shutdown::new();
        let router = Router::new().route(
            "/peer",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            }),
        );
        https(
            &owner,
            "test",
            listener,
            router,
            server_tls,
            SHORT,
            Duration::from_millis(300),
        );

        let tcp = TcpStream::connect(addr).await.expect("serving");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("a name");
        let mut tls = tokio_rustls::TlsConnector::from(client_tls)
            .connect(name, tcp)
            .await
            .expect("the handshake");
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            None,
            "the client offered no ALPN"
        );
        tls.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("writes");
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("127.0.0.1"), "{reply}");

        let mut silent = TcpStream::connect(addr).await.expect("serving");
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(PATIENCE, silent.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

        let mut plain = TcpStream::connect(addr).await.expect("serving");
        plain
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("writes");
        let reply = read_all(&mut plain).await;
        assert!(!reply.contains("HTTP/1.1 200"), "{reply}");
        assert!(owner.shutdown(Duration::from_secs(10)).await);
    }

    /// Failed before: a body that stopped half-way kept its handler waiting.
    #[tokio::test]
    async fn a_body_that_never_ends_fails_with_body_timeout() {
        let (owner, addr) = server(SHORT).await;
        let mut stream = TcpStream::connect(addr).await.expect("serving");
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
            .await
            .expect("writes");
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        // A complete body within the deadline is served.
        let mut ok = TcpStream::connect(addr).await.expect("serving");
        ok.write_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc",
        )
        .await
        .expect("writes");
        let reply = read_all(&mut ok).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("\r\n3"), "{reply}");
        assert!(owner.shutdown(Duration::from_secs(10)).await);
    }
}
