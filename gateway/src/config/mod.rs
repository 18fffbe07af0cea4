//! Gateway configuration: defaults < `--config` TOML file < `MERIDIAN_*`
//! env < flags. [`Settings::validate`] yields a [`GatewayConfig`] that
//! cannot be invalid; errors name the key and the fix (exit code 2).

use std::{net::SocketAddr, path::PathBuf};

mod auth;
mod https;

pub use auth::{AuthConfig, AuthFlag, ProxyFlags};
pub use https::{HttpTls, HttpTlsFlags};

use clap::Args;
pub use control_plane::{Bootstrap, ClusterConfig};
use model::{ClusterId, RetentionPolicy};
use receiver::{Limits, config::ReceiverFlags};
use serde::Deserialize;
use telemetry::{
    LogFormat,
    config::{ConfigError, LogFlags, NoUnknownKeys, TlsFlags, listen_addr},
    merge_options,
};

/// Every `run` setting, each optional until merged. Unknown keys in the
/// file are refused (the last field, see `telemetry::config::NoUnknownKeys`).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    /// Directory for the gateway's state: the embedded store, the dev CA
    /// [default: ./meridian-data].
    #[arg(long, env = "MERIDIAN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store URL(s), comma separated: `sqlite://PATH` (embedded, default
    /// `sqlite://<data-dir>/meridian.db`), one `postgres://…` URL per shard,
    /// or `cassandra://HOST:PORT[,HOST:PORT…]/KEYSPACE`.
    #[arg(
        long,
        env = "MERIDIAN_STORE",
        value_name = "URL[,URL…]",
        value_delimiter = ','
    )]
    pub store: Option<Vec<String>>,
    /// Query API, web UI, /metrics, /healthz, /readyz [default: :16686].
    #[arg(long, env = "MERIDIAN_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// `--http-tls-cert`, `--http-tls-key`: HTTPS on --http.
    #[command(flatten)]
    #[serde(flatten)]
    pub http_tls: HttpTlsFlags,
    /// Tempo's query API, for Grafana's Tempo data source (same auth and
    /// HTTPS as --http); `off` disables it [default: port 3200 on --http's host, `:3200`
    /// unless --http is on loopback].
    #[arg(long, env = "MERIDIAN_TEMPO_HTTP", value_name = "ADDR|off")]
    pub tempo_http: Option<String>,
    /// Zipkin v2 query API (`/api/v2/…`, and `/zipkin/api/v2/…` for Zipkin
    /// Lens), behind --auth like --http and over HTTPS with
    /// --http-tls-cert; `off` disables it [default: port 9411 on --http's
    /// host, `:9411` unless --http is on loopback].
    #[arg(long, env = "MERIDIAN_ZIPKIN_HTTP", value_name = "ADDR|off")]
    pub zipkin_http: Option<String>,
    /// Federation (mTLS gRPC) listen address for agents [default: :4320].
    #[arg(long, env = "MERIDIAN_FEDERATION", value_name = "ADDR")]
    pub federation: Option<String>,
    /// `--otlp-grpc`, `--otlp-http` (plain OTLP for single-node use without
    /// an agent), `--max-request-bytes`, `--max-decompressed-bytes`.
    #[command(flatten)]
    #[serde(flatten)]
    pub receiver: ReceiverFlags,
    /// Cluster of every span received on the plain OTLP ports (they have
    /// no client identity) [default: default].
    #[arg(long, env = "MERIDIAN_DEFAULT_CLUSTER", value_name = "NAME")]
    pub default_cluster: Option<String>,
    /// Keep a plain OTLP resource's own `k8s.cluster.name` (single-node
    /// use with one trusted sender) [default: false].
    #[arg(long, env = "MERIDIAN_OTLP_TRUST_CLUSTER_ATTRIBUTE", value_name = "BOOL",
        num_args = 0..=1, default_missing_value = "true")]
    pub otlp_trust_cluster_attribute: Option<bool>,
    /// Refuse agents of unregistered clusters even while none is registered
    /// (once one is, they are refused anyway) [default: false].
    #[arg(long, env = "MERIDIAN_REQUIRE_REGISTERED_CLUSTERS", value_name = "BOOL",
        num_args = 0..=1, default_missing_value = "true")]
    pub require_registered_clusters: Option<bool>,
    /// `--tls-ca`, `--tls-cert`, `--tls-key`: all three, or none for a
    /// development CA in `<data-dir>/tls`.
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsFlags,
    /// A certificate revocation list from the CA (PEM or DER): agents and
    /// nodes whose certificates it revokes are refused on every call, open
    /// connections included; re-read within 2 s of a change
    /// [default: none].
    #[arg(long, env = "MERIDIAN_TLS_CRL", value_name = "FILE")]
    pub tls_crl: Option<PathBuf>,
    /// Uncompressed bytes of federation batches processed at once; beyond,
    /// agents get RESOURCE_EXHAUSTED with a retry hint [default: 268435456].
    #[arg(long, env = "MERIDIAN_MAX_INFLIGHT_BYTES", value_name = "BYTES")]
    pub max_inflight_bytes: Option<u64>,
    /// `--log-format`.
    #[command(flatten)]
    #[serde(flatten)]
    pub log: LogFlags,
    /// Extra tag keys indexed for fast `key=value` search, comma separated,
    /// on top of the built-in list (error, http.status_code, …). Other keys
    /// are searched by scanning candidate traces.
    #[arg(
        long,
        env = "MERIDIAN_INDEX_TAGS",
        value_name = "KEY[,KEY…]",
        value_delimiter = ','
    )]
    pub index_tags: Option<Vec<String>>,
    /// How long spans are kept, in hours: `DEFAULT[,CLUSTER=HOURS…]`, or
    /// only `CLUSTER=HOURS` entries to keep other clusters forever
    /// [default: keep everything].
    #[arg(long, env = "MERIDIAN_RETENTION_HOURS", value_name = "SPEC")]
    pub retention_hours: Option<String>,
    /// Seconds between retention passes [default: 300].
    #[arg(long, env = "MERIDIAN_RETENTION_INTERVAL", value_name = "SECS")]
    pub retention_interval: Option<u64>,
    /// The cluster whose clock is the reference for clock-skew offsets
    /// [default: the first cluster name in byte order].
    #[arg(long, env = "MERIDIAN_SKEW_REFERENCE", value_name = "CLUSTER")]
    pub skew_reference: Option<String>,
    /// Cross-cluster tail sampling: how long after a trace's first digest
    /// the worker of its shard decides a trace no cluster kept (digests of
    /// other clusters arriving within it are combined), milliseconds. Keep
    /// it below the agents' --tail-verdict-timeout-ms [default: 1000].
    #[arg(long, env = "MERIDIAN_TAIL_DECISION_WINDOW_MS", value_name = "MS")]
    pub tail_decision_window_ms: Option<u64>,
    /// Alert notification receivers, comma-separated: `URL` (Alertmanager
    /// webhook JSON) or `json:URL` (generic JSON) [default: none].
    #[arg(long, env = "MERIDIAN_ALERT_WEBHOOKS", value_name = "URLS")]
    pub alert_webhooks: Option<String>,
    /// The UI's base URL for links in notifications
    /// [default: http://localhost:16686].
    #[arg(long, env = "MERIDIAN_UI_URL", value_name = "URL")]
    pub ui_url: Option<String>,
    /// This gateway's id in the gateway cluster, unique, from 1 [default: 1].
    #[arg(long, env = "MERIDIAN_NODE_ID", value_name = "N")]
    pub node_id: Option<u64>,
    /// Raft (mTLS gRPC) listen address for the other gateways [default:
    /// :4321]. Outgoing Raft connections leave from its IP when it names
    /// one.
    #[arg(long, env = "MERIDIAN_RAFT", value_name = "ADDR")]
    pub raft: Option<String>,
    /// Form a new cluster of these members: `ID=HOST:PORT,…` (their Raft
    /// addresses, this node included); the lowest id initializes it once.
    /// Without --peers or --join a gateway forms a one-node cluster.
    #[arg(long, env = "MERIDIAN_PEERS", value_name = "ID=HOST:PORT,…")]
    pub peers: Option<String>,
    /// Join an existing cluster through any member's Raft address.
    #[arg(
        long,
        env = "MERIDIAN_JOIN",
        value_name = "HOST:PORT",
        conflicts_with = "peers"
    )]
    pub join: Option<String>,
    /// The Raft address peers dial to reach this node, when it differs from
    /// the listen address (a Kubernetes service, a proxy).
    #[arg(long, env = "MERIDIAN_RAFT_ADVERTISE", value_name = "HOST:PORT")]
    pub raft_advertise: Option<String>,
    /// The host agents and peers reach this node at, for ports that listen
    /// on an unspecified address (0.0.0.0, [::]) [default: the listen IP;
    /// none when unspecified, so agents keep their --gateway list].
    #[arg(long, env = "MERIDIAN_ADVERTISE_HOST", value_name = "HOST")]
    pub advertise_host: Option<String>,
    /// Bearer token the admin API (/api/v1/admin/…) requires. Without it
    /// the admin API is open: set one in production.
    #[arg(
        long,
        env = "MERIDIAN_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// How the --http port identifies callers: `tokens` (API tokens and
    /// --admin-token on every API route), `proxy` (a trusted SSO proxy's
    /// headers, and tokens) or `none` (reads open, a warning at start).
    /// Needed when --http listens beyond loopback [default on loopback:
    /// open].
    #[arg(long, env = "MERIDIAN_AUTH", value_name = "MODE")]
    pub auth: Option<AuthFlag>,
    /// `--auth-proxy-header`, `--auth-proxy-groups-header`,
    /// `--auth-proxy-trusted` (with `--auth proxy`).
    #[command(flatten)]
    #[serde(flatten)]
    pub auth_proxy: ProxyFlags,
    /// Refuses the file's unknown keys; stays last.
    #[arg(skip)]
    #[serde(flatten)]
    pub unknown_keys: NoUnknownKeys,
}

/// TLS material for the federation port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Use these files.
    Files {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
    /// Create (once) a development CA and node certificate in this directory.
    DevCa(PathBuf),
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub data_dir: PathBuf,
    pub stores: Vec<String>,
    pub http: SocketAddr,
    /// `--tempo-http`; `None` when `off`.
    pub tempo_http: Option<SocketAddr>,
    pub federation: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub default_cluster: ClusterId,
    pub otlp_trust_cluster_attribute: bool,
    pub registration: ingest::Registration,
    pub tls: TlsSource,
    /// `--tls-crl`.
    pub tls_crl: Option<PathBuf>,
    pub max_inflight_bytes: u64,
    pub limits: Limits,
    pub log_format: LogFormat,
    pub store_options: store::StoreOptions,
    pub retention_interval: std::time::Duration,
    pub cluster: ClusterConfig,
    pub stitch: stitch::StitchConfig,
    /// Cross-cluster tail decisions.
    pub tail: stitch::tail::TailSettings,
    /// RED metrics, rollups and alerting.
    pub red: metrics_alerts::RedConfig,
    /// Alert evaluation and notifications.
    pub alerts: metrics_alerts::AlertsConfig,
    /// `--auth`, checked against `--http`.
    pub auth: AuthConfig,
    /// HTTPS on `--http` (`None`: plain HTTP).
    pub http_tls: Option<HttpTls>,
    /// `--zipkin-http` (`None`: off).
    pub zipkin_http: Option<SocketAddr>,
}

/// Parses `--retention-hours`: `72`, `72,eu-west=24` or `eu-west=24`.
pub fn parse_retention(spec: &str) -> Result<RetentionPolicy, ConfigError> {
    let bad = |msg: String| {
        ConfigError::new(
            "retention-hours",
            msg,
            "write DEFAULT[,CLUSTER=HOURS…], e.g. 168,eu-west=72",
        )
    };
    let mut policy = RetentionPolicy::default();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((cluster, hours)) => {
                let cluster = ClusterId::new(cluster.trim()).map_err(|e| bad(e.to_string()))?;
                let hours = hours
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{hours:?} is not a number of hours")))?;
                policy.clusters.insert(cluster.as_str().to_owned(), hours);
            }
            None if policy.default_hours.is_none() => {
                policy.default_hours = Some(
                    part.parse()
                        .map_err(|_| bad(format!("{part:?} is not a number of hours")))?,
                );
            }
            None => return Err(bad("more than one default".into())),
        }
    }
    policy.validate().map_err(bad)?;
    Ok(policy)
}

/// Checks a `HOST:PORT` address given to the cluster flags.
fn host_port(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    match v.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0) => Ok(v.to_owned()),
        _ => Err(ConfigError::new(
            key,
            format!("{value:?} is not HOST:PORT"),
            "write e.g. gateway-0.gateway:4321",
        )),
    }
}

impl Settings {
    fn cluster_config(&self) -> Result<ClusterConfig, ConfigError> {
        let node_id = self.node_id.unwrap_or(1);
        if node_id == 0 {
            return Err(ConfigError::new(
                "node-id",
                "node ids start at 1",
                "use --node-id 1, 2, 3…",
            ));
        }
        let raft = listen_addr("raft", self.raft.as_deref().unwrap_or(":4321"))?;
        let bootstrap = match (&self.peers, &self.join) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "join",
                    "--peers and --join exclude each other",
                    "give one",
                ));
            }
            (Some(spec), None) => {
                let peers = control_plane::raft::network::parse_peers(spec).map_err(|e| {
                    ConfigError::new("peers", e, "write ID=HOST:PORT,… with this node included")
                })?;
                if !peers.contains_key(&node_id) {
                    return Err(ConfigError::new(
                        "peers",
                        format!("this node ({node_id}) is not in --peers"),
                        "list every member, this one included, or set --node-id",
                    ));
                }
                Bootstrap::Peers(peers)
            }
            (None, Some(addr)) => Bootstrap::Join(host_port("join", addr)?),
            (None, None) => Bootstrap::Single,
        };
        let raft_advertise = self
            .raft_advertise
            .as_deref()
            .map(|a| host_port("raft-advertise", a))
            .transpose()?;
        if bootstrap != Bootstrap::Single
            && raft.ip().is_unspecified()
            && raft_advertise.is_none()
            && self.advertise_host.is_none()
        {
            return Err(ConfigError::new(
                "advertise-host",
                "peers cannot dial an unspecified address (the --raft listener is on 0.0.0.0 or [::])",
                "give --advertise-host HOST (or --raft-advertise HOST:PORT, or --raft IP:PORT)",
            ));
        }
        let admin_token = self.admin_token.clone().filter(|t| !t.is_empty());
        Ok(ClusterConfig {
            node_id,
            raft,
            bootstrap,
            raft_advertise,
            advertise_host: self.advertise_host.clone().filter(|h| !h.is_empty()),
            admin_token,
            timing: control_plane::PlaneConfig::default(),
        })
    }

    pub fn merge(mut self, file: Settings) -> Self {
        self.receiver.merge(file.receiver);
        self.tls.merge(file.tls);
        self.log.merge(file.log);
        self.http_tls.merge(file.http_tls);
        self.auth_proxy.merge(file.auth_proxy);
        merge_options!(self, file; data_dir, store, http, tempo_http, federation,
            default_cluster, otlp_trust_cluster_attribute, require_registered_clusters,
            max_inflight_bytes, index_tags, retention_hours, retention_interval,
            skew_reference, alert_webhooks, ui_url, node_id, raft, peers, join, raft_advertise,
            advertise_host, admin_token, tail_decision_window_ms, auth, tls_crl, zipkin_http);
        self
    }

    pub fn validate(self) -> Result<GatewayConfig, ConfigError> {
        let cluster = self.cluster_config()?;
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("meridian-data"));
        let stores = match self.store {
            Some(s) if !s.is_empty() => s,
            _ => vec![format!(
                "sqlite://{}",
                data_dir.join("meridian.db").display()
            )],
        };
        let scheme = |u: &str| u.split(':').next().unwrap_or_default().to_owned();
        for s in &stores {
            if !matches!(
                scheme(s).as_str(),
                "sqlite" | "postgres" | "postgresql" | "cassandra"
            ) {
                return Err(ConfigError::new(
                    "store",
                    format!("{s:?} is not a supported store URL"),
                    "use sqlite://PATH, postgres://HOST/DB (one per shard) or cassandra://HOST:PORT/KEYSPACE",
                ));
            }
        }
        if stores.iter().any(|s| scheme(s) != scheme(&stores[0])) {
            return Err(ConfigError::new(
                "store",
                "every store URL must name the same backend",
                "list only postgres:// shards, or one sqlite:// or cassandra:// URL",
            ));
        }
        if stores.len() > 1 && !scheme(&stores[0]).starts_with("postgres") {
            return Err(ConfigError::new(
                "store",
                "only Postgres takes several store URLs (one per shard)",
                "give one sqlite://PATH or one cassandra:// URL",
            ));
        }
        let tls = match (self.tls.tls_ca, self.tls.tls_cert, self.tls.tls_key) {
            (None, None, None) => TlsSource::DevCa(data_dir.join("tls")),
            (Some(ca), Some(cert), Some(key)) => TlsSource::Files { ca, cert, key },
            _ => {
                return Err(ConfigError::new(
                    "tls-ca",
                    "tls-ca, tls-cert and tls-key go together",
                    "give all three, or none for a development CA in <data-dir>/tls",
                ));
            }
        };
        let default_cluster = ClusterId::new(self.default_cluster.as_deref().unwrap_or("default"))
            .map_err(|e| ConfigError::new("default-cluster", e.to_string(), ""))?;
        let receivers = self.receiver.validate()?;
        let limits = receivers.limits;
        let max_inflight_bytes = self.max_inflight_bytes.unwrap_or(256 << 20);
        if max_inflight_bytes < limits.max_decompressed_bytes as u64 {
            return Err(ConfigError::new(
                "max-inflight-bytes",
                "must be at least max-decompressed-bytes, or no large batch could ever be admitted",
                "raise max-inflight-bytes",
            ));
        }
        let retention = match self.retention_hours.as_deref() {
            Some(spec) => parse_retention(spec)?,
            None => RetentionPolicy::default(),
        };
        let mut indexed_tags = self.index_tags.unwrap_or_default();
        indexed_tags.retain(|t| !t.trim().is_empty());
        let retention_interval =
            std::time::Duration::from_secs(self.retention_interval.unwrap_or(300).max(1));
        let skew_reference = match self.skew_reference.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => Some(
                ClusterId::new(r)
                    .map_err(|e| {
                        ConfigError::new("skew-reference", e.to_string(), "name a cluster")
                    })?
                    .as_str()
                    .to_owned(),
            ),
            _ => None,
        };
        let window = self.tail_decision_window_ms.map_or(
            stitch::tail::DEFAULT_WINDOW,
            std::time::Duration::from_millis,
        );
        if window.is_zero() || window > std::time::Duration::from_secs(60) {
            return Err(ConfigError::new(
                "tail-decision-window-ms",
                "must be within 1..=60000",
                "about the spread of a trace's decision times across clusters, e.g. 1000",
            ));
        }
        let red = metrics_alerts::RedConfig::default();
        let mut alerts = metrics_alerts::AlertsConfig::default();
        for hook in self
            .alert_webhooks
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            let (format, url) = match hook.strip_prefix("json:") {
                Some(u) => (metrics_alerts::alerts::WebhookFormat::Json, u),
                None => (metrics_alerts::alerts::WebhookFormat::Alertmanager, hook),
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new(
                    "alert-webhooks",
                    format!("{hook:?} is not an http(s) URL"),
                    "write URL or json:URL, comma-separated",
                ));
            }
            alerts.webhooks.push(metrics_alerts::alerts::Webhook {
                url: url.to_owned(),
                format,
            });
        }
        if let Some(u) = &self.ui_url {
            alerts.ui_url = u.trim().to_owned();
        }
        let http = listen_addr("http", self.http.as_deref().unwrap_or(":16686"))?;
        let auth = AuthConfig::new(self.auth, self.auth_proxy, http)?;
        let zipkin_http = query_port(
            "zipkin-http",
            self.zipkin_http.as_deref(),
            http,
            9411,
            self.auth,
        )?;
        let tempo_http = query_port(
            "tempo-http",
            self.tempo_http.as_deref(),
            http,
            3200,
            self.auth,
        )?;
        Ok(GatewayConfig {
            zipkin_http,
            tempo_http,
            auth,
            http_tls: self.http_tls.validate()?,
            tail: stitch::tail::TailSettings {
                window,
                ..Default::default()
            },
            red,
            alerts,
            stitch: stitch::StitchConfig {
                skew_reference,
                ..Default::default()
            },
            cluster,
            store_options: store::StoreOptions {
                retention,
                indexed_tags,
            },
            retention_interval,
            data_dir,
            stores,
            http,
            federation: listen_addr("federation", self.federation.as_deref().unwrap_or(":4320"))?,
            otlp_grpc: receivers.otlp_grpc,
            otlp_http: receivers.otlp_http,
            default_cluster,
            otlp_trust_cluster_attribute: self.otlp_trust_cluster_attribute.unwrap_or(false),
            registration: if self.require_registered_clusters.unwrap_or(false) {
                ingest::Registration::Required
            } else {
                ingest::Registration::OnceAnyIsRegistered
            },
            tls,
            tls_crl: self.tls_crl,
            max_inflight_bytes,
            limits,
            log_format: self.log.validate()?,
        })
    }
}

/// A second query port (`--zipkin-http`, `--tempo-http`): `off`, an
/// address, or by default `default_port` on `--http`'s host (so a gateway
/// whose `--http` stays on loopback does not open its data beyond it).
/// Beyond loopback it needs an `--auth` mode, as `--http` does.
fn query_port(
    flag: &'static str,
    text: Option<&str>,
    http: SocketAddr,
    default_port: u16,
    auth: Option<AuthFlag>,
) -> Result<Option<SocketAddr>, ConfigError> {
    let addr = match text.map(str::trim) {
        Some("off") => return Ok(None),
        Some(t) => listen_addr(flag, t)?,
        None => SocketAddr::new(http.ip(), default_port),
    };
    if auth.is_none() && !addr.ip().is_loopback() {
        return Err(ConfigError::new(
            flag,
            format!("--{flag} {addr} is reachable beyond loopback and no --auth mode is chosen"),
            format!(
                "give an --auth mode (it covers --{flag} as it does --http), a loopback --{flag}, or --{flag} off"
            ),
        ));
    }
    Ok(Some(addr))
}

#[cfg(test)]
mod tests;
