//! The agent's mTLS client identity for federation.

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {path}: {source}")]
pub struct TlsError {
    pub what: &'static str,
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// A tonic client TLS config that verifies the gateway against `files.ca`
/// and presents `files.cert` / `files.key`.
pub fn client_config(files: &TlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let ca = read("CA certificate", &files.ca)?;
    let cert = read("client certificate", &files.cert)?;
    let key = read("client key", &files.key)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key)))
}
