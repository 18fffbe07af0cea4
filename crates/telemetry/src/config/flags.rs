//! Flag blocks both binaries share: the log format and the TLS files.
//! Flag names, `MERIDIAN_*` variables and TOML keys are the same in both.
//! Used flattened only (see [`super::NoUnknownKeys`]).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::LogFormat;

/// `--log-format`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogFlags {
    /// Log format: text or json [default: text].
    #[arg(long, env = "MERIDIAN_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl LogFlags {
    /// Fills unset fields from `file`.
    pub fn merge(&mut self, file: LogFlags) {
        crate::merge_options!(self, file; log_format);
    }

    pub fn validate(&self) -> Result<LogFormat, ConfigError> {
        parse_log_format(self.log_format.as_deref())
    }
}

/// `text` or `json`.
pub fn parse_log_format(text: Option<&str>) -> Result<LogFormat, ConfigError> {
    match text {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(ConfigError::new(
            "log-format",
            format!("{other:?} is not a log format"),
            "use text or json",
        )),
    }
}

/// `--tls-ca`, `--tls-cert`, `--tls-key`: the PEM files of this process's
/// mTLS identity and the CA that verifies its peers. Each binary decides
/// which are required (an agent with `--gateway` needs all three; a gateway
/// takes all three or none).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TlsFlags {
    /// CA certificate (PEM) that signed the peers' certificates: the
    /// gateway's, for an agent; agents' and nodes', for a gateway. Without
    /// the three TLS settings a gateway creates a development CA in
    /// `<data-dir>/tls`.
    #[arg(long, env = "MERIDIAN_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM): an agent's is issued with
    /// `meridian-gateway certs issue --cluster NAME`, a gateway's with
    /// `certs issue --node`.
    #[arg(long, env = "MERIDIAN_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "MERIDIAN_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl TlsFlags {
    /// Fills unset fields from `file`.
    pub fn merge(&mut self, file: TlsFlags) {
        crate::merge_options!(self, file; tls_ca, tls_cert, tls_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats() {
        assert_eq!(LogFlags::default().validate().ok(), Some(LogFormat::Text));
        let json = LogFlags {
            log_format: Some("json".into()),
        };
        assert_eq!(json.validate().ok(), Some(LogFormat::Json));
        let bad = LogFlags {
            log_format: Some("xml".into()),
        };
        assert_eq!(bad.validate().unwrap_err().key, "log-format");
    }

    #[test]
    fn flags_win_over_the_file() {
        let mut flags = TlsFlags {
            tls_ca: Some("flag-ca.pem".into()),
            ..TlsFlags::default()
        };
        flags.merge(TlsFlags {
            tls_ca: Some("file-ca.pem".into()),
            tls_key: Some("file-key.pem".into()),
            tls_cert: None,
        });
        assert_eq!(flags.tls_ca, Some("flag-ca.pem".into()));
        assert_eq!(flags.tls_key, Some("file-key.pem".into()));
        assert_eq!(flags.tls_cert, None);
    }
}
