//! mTLS for the federation port: a rustls server config that requires a
//! client certificate signed by the Meridian CA, and an accept loop that
//! performs handshakes off the accept path, logs every refusal, and hands
//! established streams to tonic.

use std::{io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use telemetry::Shutdown;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use crate::metrics::GatewayMetrics;

/// Handshakes in progress at once; further connections wait in the kernel
/// backlog (full policy: block accept).
const MAX_HANDSHAKES: usize = 256;
/// A client that does not finish its handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no usable PEM {what} found")]
    Pem { path: String, what: &'static str },
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// A server config for `cert`/`key` that requires client certificates
/// issued by `ca`, speaking HTTP/2 only (gRPC).
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c)?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
    let key_pem = read(key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
        path: key.display().to_string(),
        what: "private key",
    })?;
    let mut cfg = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert)?, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts TCP connections and yields established mTLS streams. Refused
/// handshakes (no certificate, unknown CA, garbage) are logged and counted.
/// The returned channel is bounded (full: the accept loop waits).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shutdown: &Shutdown,
    metrics: GatewayMetrics,
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
                        tracing::warn!(%error, "federation accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let metrics = metrics.clone();
            let sd2 = sd.clone();
            sd.spawn(async move {
                let _permit = permit;
                tokio::select! {
                    _ = sd2.cancelled() => {}
                    r = handshake(acceptor, tcp, peer) => match r {
                        Ok(stream) => { let _ = tx.send(Ok(stream)).await; }
                        Err(reason) => {
                            metrics.identity_refused("tls");
                            tracing::warn!(%peer, reason, "federation connection refused: tls handshake failed");
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
