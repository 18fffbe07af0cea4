//! The receivers' flags, shared by both binaries: `--otlp-grpc`,
//! `--otlp-http`, `--max-request-bytes`, `--max-decompressed-bytes` (flag
//! names, `MERIDIAN_*` variables and TOML keys alike). Used with
//! `#[command(flatten)]` and `#[serde(flatten)]` in a settings struct that
//! ends with `telemetry::config::NoUnknownKeys`.

use std::net::SocketAddr;

use serde::Deserialize;
use telemetry::config::{ConfigError, listen_addr};

use crate::Limits;

/// The receivers' settings, each optional until merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReceiverFlags {
    /// OTLP gRPC listen address (on a gateway: plain OTLP for single-node
    /// use without an agent) [default: :4317].
    #[arg(long, env = "MERIDIAN_OTLP_GRPC", value_name = "ADDR")]
    pub otlp_grpc: Option<String>,
    /// OTLP HTTP listen address (POST /v1/traces) [default: :4318].
    #[arg(long, env = "MERIDIAN_OTLP_HTTP", value_name = "ADDR")]
    pub otlp_http: Option<String>,
    /// Largest request body accepted on the wire, bytes [default: 8388608].
    #[arg(long, env = "MERIDIAN_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Largest request body (on a gateway, also federation batch) after
    /// decompression, bytes [default: 33554432].
    #[arg(long, env = "MERIDIAN_MAX_DECOMPRESSED_BYTES", value_name = "BYTES")]
    pub max_decompressed_bytes: Option<usize>,
}

/// Validated receiver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub limits: Limits,
}

impl ReceiverFlags {
    /// Fills unset fields from `file`.
    pub fn merge(&mut self, file: ReceiverFlags) {
        telemetry::merge_options!(self, file; otlp_grpc, otlp_http, max_request_bytes,
            max_decompressed_bytes);
    }

    /// Defaults and checks; the error names the key.
    pub fn validate(&self) -> Result<ReceiverConfig, ConfigError> {
        let limits = Limits::new(
            self.max_request_bytes
                .unwrap_or(Limits::default().max_request_bytes),
            self.max_decompressed_bytes
                .unwrap_or(Limits::default().max_decompressed_bytes),
        );
        if limits.max_request_bytes == 0 || limits.max_decompressed_bytes < limits.max_request_bytes
        {
            return Err(ConfigError::new(
                "max-decompressed-bytes",
                "must be at least max-request-bytes, and both above zero",
                "",
            ));
        }
        Ok(ReceiverConfig {
            otlp_grpc: listen_addr("otlp-grpc", self.otlp_grpc.as_deref().unwrap_or(":4317"))?,
            otlp_http: listen_addr("otlp-http", self.otlp_http.as_deref().unwrap_or(":4318"))?,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_merge_and_errors_name_the_key() {
        let cfg = ReceiverFlags::default()
            .validate()
            .expect("defaults are valid");
        assert_eq!((cfg.otlp_grpc.port(), cfg.otlp_http.port()), (4317, 4318));
        assert_eq!(cfg.limits, Limits::default());
        let mut flags = ReceiverFlags {
            otlp_grpc: Some("127.0.0.1:5000".into()),
            ..ReceiverFlags::default()
        };
        flags.merge(ReceiverFlags {
            otlp_grpc: Some("127.0.0.1:6000".into()),
            otlp_http: Some("127.0.0.1:6001".into()),
            ..ReceiverFlags::default()
        });
        let cfg = flags.validate().expect("valid");
        assert_eq!((cfg.otlp_grpc.port(), cfg.otlp_http.port()), (5000, 6001));
        let small = ReceiverFlags {
            max_request_bytes: Some(100),
            max_decompressed_bytes: Some(99),
            ..ReceiverFlags::default()
        };
        assert_eq!(small.validate().unwrap_err().key, "max-decompressed-bytes");
        let bad = ReceiverFlags {
            otlp_http: Some("nowhere".into()),
            ..ReceiverFlags::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "otlp-http");
    }
}
