//! An optional certificate revocation list file (`--tls-crl`), beside the
//! replicated deny list (`admin certs revoke`).
//!
//! The file holds one or more X.509 CRLs, PEM (`-----BEGIN X509 CRL-----`)
//! or one DER CRL. Each must be signed by the Meridian CA and name it as
//! its issuer; its revoked serials (lowercase hex without leading zeros,
//! the form [`crate::serial_of`] gives) are refused on every call, open
//! connections included, by whoever reads [`Revocations`].
//!
//! The file is read at start (an unreadable or invalid file stops the
//! start) and then checked every [`POLL`] for a change of its length or
//! modification time. A new version that does not read or verify is
//! logged and ignored: the serials already in force stay in force, so a
//! half-written or wrong file never lifts a revocation. A CRL past its
//! `nextUpdate` is still applied, with a warning.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, pem::PemObject};
use telemetry::Shutdown;
use tokio::sync::watch;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::config::{TlsError, certs, read};

/// How often the CRL file is checked for a new version.
pub const POLL: Duration = Duration::from_secs(2);
/// Largest CRL file read (a CRL of a million serials is about 40 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Serials taken from the file; beyond it the file is refused (rotate the CA).
pub const MAX_SERIALS: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
}

fn invalid(path: &Path, detail: impl Into<String>) -> CrlError {
    CrlError::Invalid {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// The serials a CRL file revokes, as they stand now; clones share them.
#[derive(Debug, Clone)]
pub struct Revocations {
    serials: watch::Receiver<Arc<BTreeSet<String>>>,
}

impl Revocations {
    /// No CRL file: nothing is revoked, ever (its subscribers see the
    /// channel closed, i.e. no change will come).
    pub fn none() -> Self {
        let (_tx, rx) = watch::channel(Arc::new(BTreeSet::new()));
        Self { serials: rx }
    }

    /// Whether `serial` (lowercase hex without leading zeros) is revoked.
    pub fn revokes(&self, serial: &str) -> bool {
        self.serials.borrow().contains(serial)
    }

    /// The serials now, and each new set once the file changed.
    pub fn subscribe(&self) -> watch::Receiver<Arc<BTreeSet<String>>> {
        self.serials.clone()
    }

    /// Reads `path` now (an error stops the caller's start), then follows
    /// its changes every [`POLL`] as a task of `owner`.
    pub fn watch(owner: &Shutdown, path: &Path, ca: &Path) -> Result<Self, CrlError> {
        let ca_der = certs(ca)?
            .into_iter()
            .next()
            .ok_or_else(|| invalid(ca, "no CA certificate"))?;
        let serials = load(path, &ca_der)?;
        tracing::info!(
            path = %path.display(),
            serials = serials.len(),
            "certificate revocation list loaded"
        );
        let (tx, rx) = watch::channel(Arc::new(serials));
        let path = path.to_path_buf();
        let token = owner.token().clone();
        owner.spawn(async move {
            let mut seen = stamp(&path);
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(POLL) => {}
                }
                let now = stamp(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                reload(&path, &ca_der, &tx);
            }
        });
        Ok(Self { serials: rx })
    }
}

/// What tells a new version of the file: its length and modification time.
fn stamp(path: &PathBuf) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

fn reload(path: &Path, ca: &CertificateDer<'_>, tx: &watch::Sender<Arc<BTreeSet<String>>>) {
    match load(path, ca) {
        Ok(serials) => {
            tracing::info!(
                path = %path.display(),
                serials = serials.len(),
                "certificate revocation list reloaded"
            );
            tx.send_replace(Arc::new(serials));
        }
        Err(error) => tracing::error!(
            %error,
            "certificate revocation list not reloaded; the serials already revoked stay revoked"
        ),
    }
}

/// The serials revoked by the CRLs in `path`, each verified against `ca`.
pub fn load(path: &Path, ca: &CertificateDer<'_>) -> Result<BTreeSet<String>, CrlError> {
    let size = std::fs::metadata(path)
        .map_err(|e| invalid(path, e.to_string()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(invalid(
            path,
            format!("{size} bytes, above the limit of {MAX_FILE_BYTES}"),
        ));
    }
    let bytes = read(path)?;
    let ders: Vec<CertificateRevocationListDer<'static>> =
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(path, format!("PEM: {e:?}")))?
        } else {
            vec![CertificateRevocationListDer::from(bytes)]
        };
    if ders.is_empty() {
        return Err(invalid(path, "no X509 CRL in the file"));
    }
    let (_, ca_cert) =
        X509Certificate::from_der(ca).map_err(|e| invalid(path, format!("the CA: {e}")))?;
    let mut serials = BTreeSet::new();
    for der in &ders {
        let (_, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| invalid(path, format!("not a CRL: {e}")))?;
        if crl.issuer() != ca_cert.subject() {
            return Err(invalid(
                path,
                format!(
                    "issued by {}, not by the CA {}",
                    crl.issuer(),
                    ca_cert.subject()
                ),
            ));
        }
        crl.verify_signature(ca_cert.public_key())
            .map_err(|e| invalid(path, format!("signature does not verify with the CA: {e}")))?;
        if let Some(next) = crl.next_update()
            && next.timestamp() < time::OffsetDateTime::now_utc().unix_timestamp()
        {
            tracing::warn!(
                path = %path.display(),
                next_update = %next,
                "the certificate revocation list is past its nextUpdate; applied anyway"
            );
        }
        for revoked in crl.iter_revoked_certificates() {
            if serials.len() >= MAX_SERIALS {
                return Err(invalid(path, format!("more than {MAX_SERIALS} serials")));
            }
            serials.insert(hex_serial(revoked.raw_serial()));
        }
    }
    Ok(serials)
}

/// Lowercase hex without leading zeros, as [`crate::serial_of`].
fn hex_serial(raw: &[u8]) -> String {
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    match hex.trim_start_matches('0') {
        "" => "0".into(),
        trimmed => trimmed.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{self, Subject};

    fn ca_der(dir: &Path) -> CertificateDer<'static> {
        certs(&certs::ca_paths(dir).cert).expect("ca").remove(0)
    }

    #[test]
    fn a_crl_from_the_ca_revokes_its_serials() {
        let dir = tempfile::tempdir().expect("tempdir");
        certs::init_ca(dir.path()).expect("ca");
        let agent =
            certs::issue(dir.path(), &Subject::Cluster("east".into()), dir.path()).expect("agent");
        let serial = certs::serial_of(&certs(&agent.cert).expect("cert")[0]).expect("serial");
        let crl = dir.path().join("crl.pem");
        certs::revocation_list(
            dir.path(),
            &[serial.clone(), "0a:0B".into()],
            std::time::Duration::from_secs(86_400),
            &crl,
        )
        .expect("crl");
        let revoked = load(&crl, &ca_der(dir.path())).expect("load");
        assert_eq!(revoked, BTreeSet::from([serial, "a0b".to_string()]));
        // DER works as well.
        let der = CertificateRevocationListDer::pem_slice_iter(&std::fs::read(&crl).expect("read"))
            .next()
            .expect("one")
            .expect("pem");
        std::fs::write(&crl, der.as_ref()).expect("write");
        assert_eq!(load(&crl, &ca_der(dir.path())).expect("der").len(), 2);
    }

    #[test]
    fn a_crl_of_another_ca_or_garbage_is_refused() {
        let ours = tempfile::tempdir().expect("tempdir");
        let theirs = tempfile::tempdir().expect("tempdir");
        certs::init_ca(ours.path()).expect("ca");
        certs::init_ca(theirs.path()).expect("ca");
        let crl = ours.path().join("crl.pem");
        certs::revocation_list(
            theirs.path(),
            &["01".into()],
            std::time::Duration::from_secs(86_400),
            &crl,
        )
        .expect("crl");
        let err = load(&crl, &ca_der(ours.path()))
            .expect_err("another CA")
            .to_string();
        assert!(err.contains("signature"), "{err}");
        std::fs::write(
            &crl,
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        )
        .expect("write");
        assert!(load(&crl, &ca_der(ours.path())).is_err());
        std::fs::write(&crl, b"\x30\x03\x02\x01\x01").expect("write");
        assert!(load(&crl, &ca_der(ours.path())).is_err());
        std::fs::write(&crl, b"").expect("write");
        assert!(load(&crl, &ca_der(ours.path())).is_err());
    }

    #[test]
    fn a_bad_new_version_keeps_the_serials_in_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        certs::init_ca(dir.path()).expect("ca");
        let crl = dir.path().join("crl.pem");
        certs::revocation_list(
            dir.path(),
            &["beef".into()],
            std::time::Duration::from_secs(86_400),
            &crl,
        )
        .expect("crl");
        let ca = ca_der(dir.path());
        let (tx, rx) = watch::channel(Arc::new(load(&crl, &ca).expect("load")));
        std::fs::write(&crl, b"half a file").expect("write");
        reload(&crl, &ca, &tx);
        assert!(rx.borrow().contains("beef"));
        certs::revocation_list(
            dir.path(),
            &["cafe".into()],
            std::time::Duration::from_secs(86_400),
            &crl,
        )
        .expect("crl");
        reload(&crl, &ca, &tx);
        assert_eq!(*rx.borrow().as_ref(), BTreeSet::from(["cafe".to_string()]));
    }
}
