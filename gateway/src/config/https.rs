//! `--http-tls-cert`, `--http-tls-key`: serve the `--http` port (query
//! API, admin API, UI, `/metrics`) over HTTPS. Both or neither; the files
//! are PEM (the certificate chain, leaf first, and its private key), read
//! once at start.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;
use telemetry::config::ConfigError;

/// The `--http` port's TLS flags.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HttpTlsFlags {
    /// Serve --http over HTTPS with this certificate chain (PEM, leaf
    /// first); needs --http-tls-key [default: plain HTTP].
    #[arg(long, env = "MERIDIAN_HTTP_TLS_CERT", value_name = "FILE")]
    pub http_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --http-tls-cert.
    #[arg(long, env = "MERIDIAN_HTTP_TLS_KEY", value_name = "FILE")]
    pub http_tls_key: Option<PathBuf>,
}

/// The `--http` port's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl HttpTlsFlags {
    /// Fills unset fields from `file`.
    pub fn merge(&mut self, file: HttpTlsFlags) {
        telemetry::merge_options!(self, file; http_tls_cert, http_tls_key);
    }

    /// Both files, or neither (plain HTTP).
    pub fn validate(self) -> Result<Option<HttpTls>, ConfigError> {
        match (self.http_tls_cert, self.http_tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(HttpTls { cert, key })),
            (Some(_), None) => Err(ConfigError::new(
                "http-tls-key",
                "--http-tls-cert is given without --http-tls-key",
                "give both (PEM files), or neither for plain HTTP",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "http-tls-cert",
                "--http-tls-key is given without --http-tls-cert",
                "give both (PEM files), or neither for plain HTTP",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_and_key_go_together() {
        let flags = |cert: Option<&str>, key: Option<&str>| HttpTlsFlags {
            http_tls_cert: cert.map(PathBuf::from),
            http_tls_key: key.map(PathBuf::from),
        };
        assert_eq!(flags(None, None).validate().ok(), Some(None));
        let both = flags(Some("c.pem"), Some("k.pem"))
            .validate()
            .ok()
            .flatten();
        assert_eq!(both.map(|t| t.key), Some(PathBuf::from("k.pem")));
        let key = |r: Result<Option<HttpTls>, ConfigError>| r.err().map(|e| e.key);
        assert_eq!(
            key(flags(Some("c"), None).validate()).as_deref(),
            Some("http-tls-key")
        );
        assert_eq!(
            key(flags(None, Some("k")).validate()).as_deref(),
            Some("http-tls-cert")
        );
    }
}
