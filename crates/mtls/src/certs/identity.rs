//! Who a peer certificate belongs to, from its URI SAN.

use model::ClusterId;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Prefix of every Meridian identity URI.
pub const SPIFFE_PREFIX: &str = "spiffe://meridian/";

/// A verified peer's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An edge agent of this cluster.
    Cluster(ClusterId),
    /// A gateway node.
    Node(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("certificate has no spiffe://meridian/cluster/<name> or /node/<name> URI SAN")]
    Missing,
    #[error("certificate names an invalid cluster: {0}")]
    Cluster(String),
}

/// Reads the identity from a certificate that rustls already verified
/// against the CA. Exactly one Meridian URI SAN is expected; the first wins.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<Identity, IdentityError> {
    identity_in(&parse(cert)?)
}

/// The identity and the serial ([`serial_of`]) of a verified peer
/// certificate, parsed once (every federation and Raft call checks both).
pub fn identity_and_serial_of(
    cert: &CertificateDer<'_>,
) -> Result<(Identity, String), IdentityError> {
    let parsed = parse(cert)?;
    Ok((identity_in(&parsed)?, serial_in(&parsed)))
}

fn parse<'a>(cert: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, IdentityError> {
    X509Certificate::from_der(cert)
        .map(|(_, parsed)| parsed)
        .map_err(|e| IdentityError::Parse(e.to_string()))
}

fn identity_in(parsed: &X509Certificate<'_>) -> Result<Identity, IdentityError> {
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(e.to_string()))?
        .ok_or(IdentityError::Missing)?;
    for name in &san.value.general_names {
        let GeneralName::URI(uri) = name else {
            continue;
        };
        let Some(rest) = uri.strip_prefix(SPIFFE_PREFIX) else {
            continue;
        };
        if let Some(cluster) = rest.strip_prefix("cluster/") {
            return ClusterId::new(cluster)
                .map(Identity::Cluster)
                .map_err(|e| IdentityError::Cluster(e.to_string()));
        }
        if let Some(node) = rest.strip_prefix("node/") {
            return Ok(Identity::Node(node.to_owned()));
        }
    }
    Err(IdentityError::Missing)
}

/// The certificate's serial number as lowercase hex without leading zeros
/// (the form of the replicated deny list, `admin certs revoke --serial`).
pub fn serial_of(cert: &CertificateDer<'_>) -> Result<String, IdentityError> {
    Ok(serial_in(&parse(cert)?))
}

fn serial_in(parsed: &X509Certificate<'_>) -> String {
    let hex: String = parsed
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}
