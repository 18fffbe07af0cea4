//! Agent configuration: defaults < `--config` TOML file < `MERIDIAN_*` env
//! < flags. [`Settings::validate`] yields an [`AgentConfig`] that cannot be
//! invalid; errors name the key and the fix (the binary exits with code 2).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser};
use model::ClusterId;
use receiver::{Limits, config::ReceiverFlags};
use serde::Deserialize;
use telemetry::{
    LogFormat,
    config::{ConfigError, LogFlags, NoUnknownKeys, TlsFlags, listen_addr},
    merge_options,
};

use crate::buffer::FullPolicy;

/// meridian-agent: receives spans in a cluster (OTLP gRPC/HTTP, Zipkin) and
/// forwards them over mTLS gRPC to the Meridian gateway, releasing its buffer
/// only after the gateway's store committed them.
#[derive(Debug, Parser)]
#[command(name = "meridian-agent", version)]
pub struct Cli {
    /// TOML file with any of the settings below; keys are the flag names,
    /// e.g. `cluster = "us-east"`, `otlp-grpc = ":4317"`.
    #[arg(long, env = "MERIDIAN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

/// Every setting, each optional until merged. Unknown keys in the file are
/// refused (the last field, see `telemetry::config::NoUnknownKeys`).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    /// Name of this cluster. Must equal the cluster in the agent's client
    /// certificate (the gateway refuses batches otherwise). Required.
    #[arg(long, env = "MERIDIAN_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,
    /// Gateway federation endpoints, comma separated
    /// (https://HOST:PORT,…). The agent fails over between them. Required.
    #[arg(
        long,
        env = "MERIDIAN_GATEWAY",
        value_name = "URLS",
        value_delimiter = ','
    )]
    pub gateway: Option<Vec<String>>,
    /// `--tls-ca`, `--tls-cert`, `--tls-key`: required with `--gateway`.
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsFlags,
    /// `--otlp-grpc`, `--otlp-http`, `--max-request-bytes`,
    /// `--max-decompressed-bytes`.
    #[command(flatten)]
    #[serde(flatten)]
    pub receiver: ReceiverFlags,
    /// Zipkin v2 listen address (POST /api/v2/spans) [default: :9411].
    #[arg(long, env = "MERIDIAN_ZIPKIN", value_name = "ADDR")]
    pub zipkin: Option<String>,
    /// Admin listen address: /metrics, /healthz, /readyz [default: :13133].
    #[arg(long, env = "MERIDIAN_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
    /// Directory for the agent's state (its id now; the WAL in the agent
    /// issue) [default: ./meridian-agent-data].
    #[arg(long, env = "MERIDIAN_BUFFER_DIR", value_name = "DIR")]
    pub buffer_dir: Option<PathBuf>,
    /// Bytes of spans the buffer holds before receivers answer 429 /
    /// RESOURCE_EXHAUSTED with a retry hint [default: 268435456].
    #[arg(long, env = "MERIDIAN_BUFFER_MAX_BYTES", value_name = "BYTES")]
    pub buffer_max_bytes: Option<u64>,
    /// `wal`: answer clients only once their spans are on disk (survives
    /// crashes); `memory`: answer once buffered in memory [default: wal].
    #[arg(long, env = "MERIDIAN_DURABILITY", value_name = "wal|memory")]
    pub durability: Option<String>,
    /// When the buffer is full: `block` refuses new spans with a retry hint
    /// (clients retry), `drop-oldest` discards the oldest buffered spans and
    /// counts them [default: block].
    #[arg(
        long,
        env = "MERIDIAN_BUFFER_FULL_POLICY",
        value_name = "block|drop-oldest"
    )]
    pub buffer_full_policy: Option<String>,
    /// WAL group-commit window: how long to gather appends before one
    /// fdatasync, milliseconds [default: 2].
    #[arg(long, env = "MERIDIAN_GROUP_COMMIT_MS", value_name = "MS")]
    pub group_commit_ms: Option<u64>,
    /// Sampling policy file (TOML: `[head]`, `[tail]`; see the README)
    /// [default: keep every span].
    #[arg(long, env = "MERIDIAN_SAMPLING_CONFIG", value_name = "FILE")]
    pub sampling_config: Option<PathBuf>,
    /// Jaeger remote-sampling listen address (GET /sampling?service=)
    /// [default: :5778].
    #[arg(long, env = "MERIDIAN_SAMPLING", value_name = "ADDR")]
    pub sampling: Option<String>,
    /// Jaeger remote sampling over gRPC
    /// (`jaeger.api_v2.SamplingManager/GetSamplingStrategy`, what OTel
    /// Java's `jaeger_remote` sampler calls), the same strategies as
    /// --sampling; `off` disables it [default: :5779].
    #[arg(long, env = "MERIDIAN_SAMPLING_GRPC", value_name = "ADDR|off")]
    pub sampling_grpc: Option<String>,
    /// Also send the sampled stream to this OTLP gRPC endpoint
    /// (http://HOST:PORT). Without --gateway the agent is a plain OTLP
    /// forwarder.
    #[arg(long, env = "MERIDIAN_EXPORT_OTLP", value_name = "URL")]
    pub export_otlp: Option<String>,
    /// Compression of --export-otlp requests: gzip or none [default: gzip].
    #[arg(
        long,
        env = "MERIDIAN_EXPORT_OTLP_COMPRESSION",
        value_name = "gzip|none"
    )]
    pub export_otlp_compression: Option<String>,
    /// `--log-format`.
    #[command(flatten)]
    #[serde(flatten)]
    pub log: LogFlags,
    /// Cross-cluster tail sampling: `on` sends a digest of every tail
    /// decision to the gateway and holds locally dropped traces for the
    /// gateway's verdict (a trace kept in any cluster is kept whole in
    /// all); `off` decides locally only. Needs --gateway and a tail policy
    /// [default: on with --gateway].
    #[arg(long, env = "MERIDIAN_TAIL_VERDICTS", value_name = "on|off")]
    pub tail_verdicts: Option<String>,
    /// How long a locally dropped trace waits for the gateway's verdict
    /// before its local drop stands (counted in
    /// meridian_agent_tail_verdict_timeouts_total), milliseconds
    /// [default: 2000].
    #[arg(long, env = "MERIDIAN_TAIL_VERDICT_TIMEOUT_MS", value_name = "MS")]
    pub tail_verdict_timeout_ms: Option<u64>,
    /// Refuses the file's unknown keys; stays last.
    #[arg(skip)]
    #[serde(flatten)]
    pub unknown_keys: NoUnknownKeys,
}

/// The PEM files of an mTLS identity plus the CA that verifies the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where accepted spans are kept until the gateway committed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Wal,
    Memory,
}

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub cluster: ClusterId,
    pub gateways: Vec<String>,
    /// Present when `gateways` is not empty.
    pub tls: Option<TlsFiles>,
    pub sampling: model::sampling::SamplingConfig,
    pub sampling_addr: SocketAddr,
    /// `--sampling-grpc`; `None` when `off`.
    pub sampling_grpc_addr: Option<SocketAddr>,
    pub export_otlp: Option<String>,
    pub export_otlp_gzip: bool,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub zipkin: SocketAddr,
    pub admin: SocketAddr,
    pub buffer_dir: PathBuf,
    pub buffer_max_bytes: u64,
    pub durability: Durability,
    pub buffer_full_policy: FullPolicy,
    pub group_commit: Duration,
    pub limits: Limits,
    pub log_format: LogFormat,
    /// Cross-cluster tail verdicts: how long a locally dropped trace waits
    /// for one; `None` when off (or without a gateway).
    pub tail_verdicts: Option<Duration>,
}

/// The default of `--tail-verdict-timeout-ms`.
pub const TAIL_VERDICT_TIMEOUT: Duration = Duration::from_secs(2);

impl Settings {
    /// Fills unset fields from `file`.
    pub fn merge(mut self, file: Settings) -> Self {
        self.tls.merge(file.tls);
        self.receiver.merge(file.receiver);
        self.log.merge(file.log);
        merge_options!(self, file; cluster, gateway, zipkin, admin, buffer_dir, buffer_max_bytes,
            durability, buffer_full_policy, group_commit_ms, sampling_config, sampling, sampling_grpc,
            export_otlp, export_otlp_compression, tail_verdicts, tail_verdict_timeout_ms);
        self
    }

    pub fn validate(self) -> Result<AgentConfig, ConfigError> {
        let log_format = self.log.validate()?;
        let durability = match self.durability.as_deref() {
            None | Some("wal") => Durability::Wal,
            Some("memory") => Durability::Memory,
            Some(other) => {
                return Err(ConfigError::new(
                    "durability",
                    format!("{other:?} is not a durability mode"),
                    "use wal or memory",
                ));
            }
        };
        let buffer_full_policy = match self.buffer_full_policy.as_deref() {
            None | Some("block") => FullPolicy::Block,
            Some("drop-oldest") => FullPolicy::DropOldest,
            Some(other) => {
                return Err(ConfigError::new(
                    "buffer-full-policy",
                    format!("{other:?} is not a policy"),
                    "use block or drop-oldest",
                ));
            }
        };
        let group_commit_ms = self.group_commit_ms.unwrap_or(2);
        if group_commit_ms > 1_000 {
            return Err(ConfigError::new(
                "group-commit-ms",
                "above 1000 ms every client would wait that long",
                "use 0-20",
            ));
        }
        let cluster_text = self.cluster.ok_or_else(|| {
            ConfigError::new(
                "cluster",
                "is required",
                "pass --cluster NAME (the name in this agent's certificate)",
            )
        })?;
        let cluster = ClusterId::new(&cluster_text)
            .map_err(|e| ConfigError::new("cluster", e.to_string(), ""))?;
        let export_otlp = self.export_otlp.filter(|u| !u.is_empty());
        if let Some(u) = &export_otlp {
            let ok = u
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && rest.contains(':'));
            if !ok {
                return Err(ConfigError::new(
                    "export-otlp",
                    format!("{u:?} is not an http://HOST:PORT URL"),
                    "pass the OTLP gRPC endpoint, e.g. http://collector:4317",
                ));
            }
        }
        let export_otlp_gzip = match self.export_otlp_compression.as_deref() {
            None | Some("gzip") => true,
            Some("none") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "export-otlp-compression",
                    format!("{other:?} is not a compression"),
                    "use gzip or none",
                ));
            }
        };
        let gateways = self.gateway.unwrap_or_default();
        if gateways.is_empty() && export_otlp.is_none() {
            return Err(ConfigError::new(
                "gateway",
                "is required",
                "pass --gateway https://HOST:PORT (the gateway's --federation address), or --export-otlp URL",
            ));
        }
        for g in &gateways {
            let ok = g
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty() && rest.contains(':'));
            if !ok {
                return Err(ConfigError::new(
                    "gateway",
                    format!("{g:?} is not an https://HOST:PORT URL"),
                    "federation is mTLS only: use https://HOST:PORT",
                ));
            }
        }
        let need = |v: Option<PathBuf>, key: &str| {
            v.ok_or_else(|| {
                ConfigError::new(
                    key,
                    "is required for mTLS to the gateway",
                    "create certificates with `meridian-gateway certs init` and `certs issue --cluster NAME`",
                )
            })
        };
        let tls = if gateways.is_empty() {
            None
        } else {
            Some(TlsFiles {
                ca: need(self.tls.tls_ca, "tls-ca")?,
                cert: need(self.tls.tls_cert, "tls-cert")?,
                key: need(self.tls.tls_key, "tls-key")?,
            })
        };
        let sampling = match &self.sampling_config {
            None => model::sampling::SamplingConfig::default(),
            Some(path) => {
                let bad = |e: String| {
                    ConfigError::new(
                        "sampling-config",
                        format!("{}: {e}", path.display()),
                        "see the README's sampling section for the format",
                    )
                };
                let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
                let cfg: model::sampling::SamplingConfig =
                    toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?;
                cfg.validate()
                    .map_err(|e| ConfigError::new("sampling-config", e, "fix the sampling file"))?;
                cfg
            }
        };
        let receivers = self.receiver.validate()?;
        let verdicts_on = match self.tail_verdicts.as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "tail-verdicts",
                    format!("{other:?} is not on or off"),
                    "use on or off",
                ));
            }
        };
        let verdict_timeout = self
            .tail_verdict_timeout_ms
            .map_or(TAIL_VERDICT_TIMEOUT, Duration::from_millis);
        if verdict_timeout.is_zero() || verdict_timeout > Duration::from_secs(300) {
            return Err(ConfigError::new(
                "tail-verdict-timeout-ms",
                "must be within 1..=300000",
                "a few seconds: longer than the gateway's decision window plus a round trip",
            ));
        }
        let tail_verdicts = (verdicts_on && !gateways.is_empty()).then_some(verdict_timeout);
        Ok(AgentConfig {
            tail_verdicts,
            cluster,
            gateways,
            tls,
            otlp_grpc: receivers.otlp_grpc,
            otlp_http: receivers.otlp_http,
            zipkin: listen_addr("zipkin", self.zipkin.as_deref().unwrap_or(":9411"))?,
            admin: listen_addr("admin", self.admin.as_deref().unwrap_or(":13133"))?,
            sampling,
            sampling_addr: listen_addr("sampling", self.sampling.as_deref().unwrap_or(":5778"))?,
            sampling_grpc_addr: match self.sampling_grpc.as_deref() {
                Some("off") => None,
                other => Some(listen_addr("sampling-grpc", other.unwrap_or(":5779"))?),
            },
            export_otlp,
            export_otlp_gzip,
            buffer_dir: self
                .buffer_dir
                .unwrap_or_else(|| PathBuf::from("meridian-agent-data")),
            buffer_max_bytes: self.buffer_max_bytes.unwrap_or(256 << 20),
            durability,
            buffer_full_policy,
            group_commit: Duration::from_millis(group_commit_ms),
            limits: receivers.limits,
            log_format,
        })
    }
}

/// Parses flags and env, reads `--config`, merges and validates.
pub fn load(cli: Cli) -> Result<AgentConfig, ConfigError> {
    let settings = match &cli.config {
        Some(path) => cli
            .settings
            .merge(telemetry::config::read_file::<Settings>(path)?),
        None => cli.settings,
    };
    settings.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Settings {
        Settings {
            cluster: Some("east".into()),
            gateway: Some(vec!["https://127.0.0.1:4320".into()]),
            tls: TlsFlags {
                tls_ca: Some("ca.pem".into()),
                tls_cert: Some("c.pem".into()),
                tls_key: Some("k.pem".into()),
            },
            ..Settings::default()
        }
    }

    #[test]
    fn defaults_and_precedence() {
        let cfg = minimal().validate().unwrap();
        assert_eq!(cfg.otlp_grpc.port(), 4317);
        assert_eq!(cfg.otlp_http.port(), 4318);
        assert_eq!(cfg.zipkin.port(), 9411);
        assert_eq!(cfg.admin.port(), 13133);
        let file: Settings =
            toml::from_str("otlp-grpc = \"127.0.0.1:5000\"\ncluster = \"west\"").unwrap();
        let merged = minimal().merge(file).validate().unwrap();
        assert_eq!(merged.cluster.as_str(), "east", "flags/env beat the file");
        assert_eq!(merged.otlp_grpc.port(), 5000, "the file beats defaults");
    }

    #[test]
    fn sampling_grpc_defaults_to_jaegers_port_and_turns_off() {
        let cfg = minimal().validate().unwrap();
        assert_eq!(cfg.sampling_addr.port(), 5778);
        assert_eq!(cfg.sampling_grpc_addr.map(|a| a.port()), Some(5779));
        let mut s = minimal();
        s.sampling_grpc = Some("off".into());
        assert_eq!(s.validate().unwrap().sampling_grpc_addr, None);
        let file: Settings = toml::from_str("sampling-grpc = \"127.0.0.1:0\"").unwrap();
        let cfg = minimal().merge(file).validate().unwrap();
        assert_eq!(cfg.sampling_grpc_addr.map(|a| a.port()), Some(0));
        let mut s = minimal();
        s.sampling_grpc = Some("nowhere".into());
        assert_eq!(s.validate().unwrap_err().key, "sampling-grpc");
    }

    #[test]
    fn tail_verdicts_default_on_with_a_gateway() {
        let cfg = minimal().validate().unwrap();
        assert_eq!(cfg.tail_verdicts, Some(TAIL_VERDICT_TIMEOUT));
        let mut s = minimal();
        s.tail_verdicts = Some("off".into());
        assert_eq!(s.validate().unwrap().tail_verdicts, None);
        let mut s = minimal();
        s.tail_verdict_timeout_ms = Some(500);
        assert_eq!(
            s.validate().unwrap().tail_verdicts,
            Some(Duration::from_millis(500))
        );
        let mut s = minimal();
        s.tail_verdicts = Some("yes".into());
        assert_eq!(s.validate().unwrap_err().key, "tail-verdicts");
        let mut s = minimal();
        s.tail_verdict_timeout_ms = Some(0);
        assert_eq!(s.validate().unwrap_err().key, "tail-verdict-timeout-ms");
        // Without a gateway there is nobody to ask.
        let mut s = minimal();
        s.gateway = None;
        s.export_otlp = Some("http://c:4317".into());
        assert_eq!(s.validate().unwrap().tail_verdicts, None);
    }

    #[test]
    fn errors_name_the_key() {
        let mut s = minimal();
        s.cluster = None;
        assert_eq!(s.validate().unwrap_err().key, "cluster");
        let mut s = minimal();
        s.gateway = Some(vec!["http://x:1".into()]);
        assert_eq!(s.validate().unwrap_err().key, "gateway");
        let mut s = minimal();
        s.tls.tls_key = None;
        assert_eq!(s.validate().unwrap_err().key, "tls-key");
        assert!(toml::from_str::<Settings>("nonsense = 1").is_err());
    }

    #[test]
    fn a_config_file_with_an_unknown_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        // Keys of the shared flag blocks are known...
        std::fs::write(
            &path,
            "otlp-grpc = \":5000\"\nlog-format = \"json\"\ntls-ca = \"ca.pem\"\n",
        )
        .unwrap();
        let s = telemetry::config::read_file::<Settings>(&path).unwrap();
        assert_eq!(s.receiver.otlp_grpc.as_deref(), Some(":5000"));
        assert_eq!(s.log.log_format.as_deref(), Some("json"));
        assert_eq!(s.tls.tls_ca, Some("ca.pem".into()));
        // ... a typo is not.
        std::fs::write(&path, "cluster = \"east\"\notlp-grcp = \":5000\"\n").unwrap();
        let err = telemetry::config::read_file::<Settings>(&path).unwrap_err();
        assert_eq!(err.key, "config");
        assert!(err.problem.contains("otlp-grcp"), "{err}");
    }

    #[test]
    fn the_readme_sampling_file_parses() {
        let text = r#"
[head]
default_probability = 1.0
[[head.rules]]
service = "checkout"
probability = 0.1
[[head.rules]]
service = "batch-jobs"
max_traces_per_second = 2

[tail]
decision_wait_ms = 10000
max_traces = 50000
max_bytes = 67108864
[[tail.policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]
[[tail.policies]]
name = "slow"
type = "latency"
threshold_ms = 2000
[[tail.policies]]
name = "baseline"
type = "probabilistic"
sampling_percentage = 5
"#;
        let cfg: model::sampling::SamplingConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.tail.map(|t| t.policies.len()), Some(3));
    }
}
