//! Development PKI: a CA, per-cluster agent certificates and per-node
//! gateway certificates (rcgen). Production uses cert-manager with the same
//! identities.
//!
//! Identity scheme (checked by [`identity`]): every Meridian certificate
//! carries one URI SAN, `spiffe://meridian/cluster/<name>` for an agent of a
//! cluster, `spiffe://meridian/node/<name>` for a gateway node. The CN
//! repeats the name for humans; only the URI SAN is trusted.
//!
//! Files: `ca.pem` + `ca-key.pem`; `cluster-<name>.pem` + `cluster-<name>-key.pem`;
//! `node-<name>.pem` + `node-<name>-key.pem`.

pub mod identity;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

pub use identity::{Identity, identity_and_serial_of, identity_of, serial_of};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid name {0:?}: use a cluster/node name (a-z, 0-9, '-', '.', '_')")]
    Name(String),
    #[error("not a certificate serial (hex): {0}")]
    Serial(String),
    #[error("{path} exists; refusing to overwrite a CA (remove it first)")]
    Exists { path: String },
}

/// Paths of one certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An agent of this cluster (client auth).
    Cluster(String),
    /// A gateway node (server and client auth); `hosts` are extra DNS names
    /// or IPs the node is reached at (localhost and loopback always added).
    Node { name: String, hosts: Vec<String> },
}

/// Writes `data` to `path`. A `private` file (a key) is created 0600, so
/// there is no moment in which another user can read it, and an existing
/// one is narrowed to 0600 before the key is written into it.
fn write(path: &Path, data: &str, private: bool) -> Result<(), CertError> {
    use std::io::Write;
    let io = |source| CertError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(data.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.display().to_string(),
        source,
    })
}

pub fn ca_paths(dir: &Path) -> CertPaths {
    CertPaths {
        cert: dir.join("ca.pem"),
        key: dir.join("ca-key.pem"),
    }
}

/// Creates a CA in `dir` (`ca.pem`, `ca-key.pem`), valid ten years.
pub fn init_ca(dir: &Path) -> Result<CertPaths, CertError> {
    let paths = ca_paths(dir);
    if paths.key.exists() {
        return Err(CertError::Exists {
            path: paths.key.display().to_string(),
        });
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Meridian CA");
    dn.push(DnType::OrganizationName, "Meridian");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    let cert = params.self_signed(&key)?;
    write(&paths.key, &key.serialize_pem(), true)?;
    write(&paths.cert, &cert.pem(), false)?;
    Ok(paths)
}

/// Issues a leaf certificate signed by the CA in `ca_dir`, written to
/// `out`. Valid one year.
pub fn issue(ca_dir: &Path, subject: &Subject, out: &Path) -> Result<CertPaths, CertError> {
    let ca = ca_paths(ca_dir);
    let ca_key = KeyPair::from_pem(&read(&ca.key)?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&ca.cert)?, ca_key)?;

    let (kind, name) = match subject {
        Subject::Cluster(n) => ("cluster", n.as_str()),
        Subject::Node { name, .. } => ("node", name.as_str()),
    };
    if model::ClusterId::new(name).is_err() {
        return Err(CertError::Name(name.to_owned()));
    }
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{kind}:{name}"));
    dn.push(DnType::OrganizationName, "Meridian");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(
        format!("{}{kind}/{name}", identity::SPIFFE_PREFIX).try_into()?,
    )];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if let Subject::Node { hosts, .. } = subject {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let mut all: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        all.push(name.to_owned());
        all.extend(hosts.iter().cloned());
        all.dedup();
        for h in all {
            match h.parse::<IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => params
                    .subject_alt_names
                    .push(SanType::DnsName(h.as_str().try_into()?)),
            }
        }
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let paths = CertPaths {
        cert: out.join(format!("{kind}-{name}.pem")),
        key: out.join(format!("{kind}-{name}-key.pem")),
    };
    write(&paths.key, &key.serialize_pem(), true)?;
    write(&paths.cert, &cert.pem(), false)?;
    Ok(paths)
}

/// Writes to `out` a CRL (PEM) signed by the CA in `ca_dir` that revokes
/// `serials` (hex, the form `serial_of` gives; `:` separators allowed),
/// valid for `valid_for` (at most ten years): what `--tls-crl` reads, for
/// the development CA.
pub fn revocation_list(
    ca_dir: &Path,
    serials: &[String],
    valid_for: std::time::Duration,
    out: &Path,
) -> Result<(), CertError> {
    let valid_for = Duration::seconds(
        i64::try_from(valid_for.as_secs().min(10 * 366 * 86_400)).unwrap_or(86_400),
    );
    let ca = ca_paths(ca_dir);
    let ca_key = KeyPair::from_pem(&read(&ca.key)?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&ca.cert)?, ca_key)?;
    let now = OffsetDateTime::now_utc();
    let mut revoked_certs = Vec::with_capacity(serials.len());
    for serial in serials {
        let hex: String = serial.chars().filter(|c| *c != ':').collect();
        let padded = if hex.len() % 2 == 1 {
            format!("0{hex}")
        } else {
            hex
        };
        let bytes = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(padded.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| CertError::Serial(serial.clone()))?;
        revoked_certs.push(rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(&bytes),
            revocation_time: now,
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - Duration::minutes(1),
        next_update: now + valid_for,
        crl_number: rcgen::SerialNumber::from(now.unix_timestamp().unsigned_abs()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    write(out, &crl.pem()?, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_certificates_with_identities() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        assert!(matches!(init_ca(dir.path()), Err(CertError::Exists { .. })));
        let c = issue(dir.path(), &Subject::Cluster("us-east".into()), dir.path()).unwrap();
        let n = issue(
            dir.path(),
            &Subject::Node {
                name: "gw-1".into(),
                hosts: vec!["10.0.0.5".into(), "gw.example".into()],
            },
            dir.path(),
        )
        .unwrap();
        let der = |p: &Path| {
            let pem = std::fs::read(p).unwrap();
            rustls_pki_types::pem::PemObject::from_pem_slice(&pem).unwrap()
        };
        assert_eq!(
            identity_of(&der(&c.cert)).unwrap(),
            Identity::Cluster(model::ClusterId::new("us-east").unwrap())
        );
        assert_eq!(
            identity_of(&der(&n.cert)).unwrap(),
            Identity::Node("gw-1".into())
        );
        // Serials: lowercase hex without leading zeros, one per certificate.
        let (cs, ns) = (
            serial_of(&der(&c.cert)).unwrap(),
            serial_of(&der(&n.cert)).unwrap(),
        );
        assert_ne!(cs, ns);
        for s in [&cs, &ns] {
            assert!(
                !s.starts_with('0')
                    && s.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{s}"
            );
        }
        assert!(matches!(
            issue(dir.path(), &Subject::Cluster("Bad Name".into()), dir.path()),
            Err(CertError::Name(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_owner_only_and_certificates_are_not() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path()).unwrap();
        assert_eq!(mode(&ca.key), 0o600);
        let out = dir.path().join("agent");
        // A key file left readable by someone else is narrowed when it is
        // written again.
        std::fs::create_dir_all(&out).unwrap();
        let stale = out.join("cluster-eu-key.pem");
        std::fs::write(&stale, "old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = issue(dir.path(), &Subject::Cluster("eu".into()), &out).unwrap();
        assert_eq!(c.key, stale, "the test overwrote the file issue() writes");
        assert_eq!(mode(&c.key), 0o600);
        assert_ne!(std::fs::read_to_string(&c.key).unwrap(), "old");
        assert_eq!(mode(&c.cert) & 0o077, mode(&ca.cert) & 0o077);
    }
}
