//! A raw HTTP/2 client over mTLS for tests that must misbehave below
//! tonic: announce a gRPC message and send it slowly, or never.

use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::Context;
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

/// A client config trusting `ca` and presenting `cert`/`key`, speaking h2.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in mtls::config::certs(ca)? {
        roots.add(c)?;
    }
    let key = PrivateKeyDer::from_pem_slice(&std::fs::read(key)?)
        .with_context(|| format!("a private key in {}", key.display()))?;
    let mut cfg = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(mtls::config::certs(cert)?, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// An mTLS handshake with `server` from `source` (any 127/8 address on
/// Linux; `None`: the system's choice).
pub async fn tls_connect(
    source: Option<[u8; 4]>,
    server: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = match source {
        Some(ip) => {
            let sock = TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((ip, 0)))?;
            sock.connect(server).await?
        }
        None => TcpStream::connect(server).await?,
    };
    Ok(TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?)
}

/// An HTTP/2 connection; its driver runs until the returned handle is
/// aborted or the connection ends.
pub async fn h2_connect(
    server: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> anyhow::Result<(SendRequest<Bytes>, tokio::task::JoinHandle<()>)> {
    let tls = tls_connect(None, server, cfg).await?;
    let (client, conn) = h2::client::handshake(tls).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client, driver))
}

/// Opens a call of `path` and sends only the length prefix of a `len`-byte
/// message; the stream stays open. The reply, and the body to keep alive.
pub async fn announce(
    client: &SendRequest<Bytes>,
    path: &str,
    len: u32,
) -> anyhow::Result<(ResponseFuture, h2::SendStream<Bytes>)> {
    let req = http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let (reply, mut body) = client.clone().ready().await?.send_request(req, false)?;
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&len.to_be_bytes());
    body.send_data(Bytes::from(prefix), false)?;
    Ok((reply, body))
}

/// The `grpc-status` of a reply (trailers-only: in its headers).
pub fn grpc_status(reply: &http::Response<h2::RecvStream>) -> Option<&str> {
    reply
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
}
