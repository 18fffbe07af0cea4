//! The accept loop of an mTLS port (federation, Raft): handshakes run off
//! the accept path, bounded in number and time; every refusal is logged
//! and counted; established streams go to tonic through a bounded channel.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use rustls::ServerConfig;
use telemetry::Shutdown;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// Handshakes in progress at once; further connections wait in the kernel
/// backlog (full policy: block accept).
const MAX_HANDSHAKES: usize = 256;
/// A client that does not finish its handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Called once per refused handshake (the gateway counts it as
/// `meridian_gateway_identity_refused_total{reason="tls"}`).
pub type OnRefused = Arc<dyn Fn() + Send + Sync>;

/// Accepts TCP connections and yields established mTLS streams. Refused
/// handshakes (no certificate, unknown CA, garbage) are logged and counted.
/// The returned channel is bounded (full: the accept loop waits).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shutdown: &Shutdown,
    on_refused: OnRefused,
) -> mpsc::Receiver<Result<TlsStream<TcpStream>, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let sd = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = sd.cancelled() => return,
                p = Arc::clone(&limit).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (tcp, peer) = tokio::select! {
                _ = sd.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(error) => {
                        tracing::warn!(%error, "mtls accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let on_refused = Arc::clone(&on_refused);
            let sd2 = sd.clone();
            sd.spawn(async move {
                let _permit = permit;
                tokio::select! {
                    _ = sd2.cancelled() => {}
                    r = handshake(acceptor, tcp, peer) => match r {
                        Ok(stream) => { let _ = tx.send(Ok(stream)).await; }
                        Err(reason) => {
                            on_refused();
                            tracing::warn!(%peer, reason, "connection refused: tls handshake failed");
                        }
                    },
                }
            });
        }
    });
    rx
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    _peer: SocketAddr,
) -> Result<TlsStream<TcpStream>, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".to_owned()),
    }
}
