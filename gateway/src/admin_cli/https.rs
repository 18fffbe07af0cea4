//! The admin CLI's `https://` client: one HTTP/1.1 request over rustls
//! (ring), the server's certificate verified against `--ca` and the
//! system's CA bundle. There is no way to skip the verification.
//!
//! reqwest (the `http://` client) is built without TLS: its rustls
//! backend, without the aws-lc provider, panics in every process that
//! builds a client before installing a crypto provider, tests included.
//! This client is hyper's HTTP/1 connection over tokio-rustls, which the
//! workspace already builds.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use reqwest::{Method, StatusCode, Url};
use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::CliError;

/// Where distributions keep their CA bundle (PEM), tried in order.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];
/// Largest answer read (an admin answer is a few KiB; a list of 1,000
/// tokens well under this).
pub const MAX_ANSWER_BYTES: usize = 16 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS client for one gateway's `--http` port.
#[derive(Clone)]
pub struct HttpsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient").finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// Trusts the certificates in `ca` (PEM) and the system's CA bundle.
    pub fn new(ca: Option<&Path>) -> Result<Self, CliError> {
        let mut roots = RootCertStore::empty();
        if let Some(path) = ca {
            let certs =
                mtls::config::certs(path).map_err(|e| CliError::Usage(format!("--ca: {e}")))?;
            let (_, ignored) = roots.add_parsable_certificates(certs);
            if ignored > 0 {
                return Err(CliError::Usage(format!(
                    "--ca {}: {ignored} certificate(s) are not valid CA certificates",
                    path.display()
                )));
            }
        }
        if let Some(bundle) = SYSTEM_BUNDLES.iter().find(|p| Path::new(p).exists())
            && let Ok(iter) = CertificateDer::pem_file_iter(bundle)
        {
            roots.add_parsable_certificates(iter.filter_map(Result::ok));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::Usage(format!("tls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends one request to `url` (https) and reads its answer, all within
    /// `timeout`: the status and the body.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        token: Option<&str>,
        json: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), CliError> {
        let unreachable = |reason: String| CliError::Unreachable {
            url: url.to_string(),
            hint: super::unreachable_hint(&reason),
            reason,
        };
        let host = url
            .host_str()
            .ok_or_else(|| CliError::Usage(format!("--url {url}: no host")))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let name = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| CliError::Usage(format!("--url {url}: {e}")))?;
        let work = async {
            let tcp =
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((name.as_str(), port)))
                    .await
                    .map_err(|_| "connect timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let tls =
                tokio::time::timeout(CONNECT_TIMEOUT, self.connector.connect(server_name, tcp))
                    .await
                    .map_err(|_| "tls handshake timed out".to_owned())?
                    .map_err(|e| error_chain(&e))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| error_chain(&e))?;
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let authority = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            };
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, authority)
                .header(header::CONNECTION, "close");
            if let Some(t) = token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let body = match json {
                Some(v) => {
                    req = req.header(header::CONTENT_TYPE, "application/json");
                    Bytes::from(serde_json::to_vec(v).map_err(|e| e.to_string())?)
                }
                None => Bytes::new(),
            };
            let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
            // The connection is driven here, next to the request: no task.
            let fetch = async move {
                let resp = sender
                    .send_request(req)
                    .await
                    .map_err(|e| error_chain(&e))?;
                let status = resp.status();
                let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok::<_, String>((status, body))
            };
            let (answer, _) = tokio::join!(fetch, conn);
            answer
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
            .map_err(unreachable)
    }
}

/// An error and its causes on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
