//! The integration-test Sandbox: a gateway and agents started in-process on
//! port 0 over real mTLS, with helpers to query the Jaeger API and wait on
//! conditions (never fixed sleeps).

pub mod attack;
pub mod cluster;
pub mod explain_load;
pub mod faultproxy;
pub mod otlp;
pub mod process;
pub mod rawgrpc;

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use edge_agent::{
    Agent, AgentConfig,
    buffer::FullPolicy,
    config::{Durability, TlsFiles},
};
use gateway::{Gateway, GatewayConfig, config::TlsSource};
use mtls::certs::{self, Subject};
use receiver::Limits;
use serde_json::Value;
use telemetry::LogFormat;

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One-time process setup for tests: crypto provider and quiet logs.
pub fn init() {
    telemetry::install_crypto_provider();
    telemetry::init_logging("warn", LogFormat::Text);
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A gateway (on the embedded store unless [`Sandbox::start_with`] says
/// otherwise) plus one agent per cluster.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub gateway: Gateway,
    pub agents: BTreeMap<String, Agent>,
    pub http: reqwest::Client,
    /// The gateway's `--store` URLs (peer gateways share them).
    pub stores: Vec<String>,
}

impl Sandbox {
    /// The gateway's dev CA directory (to issue more certificates).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    pub fn gateway_config(dir: &std::path::Path) -> anyhow::Result<GatewayConfig> {
        Ok(GatewayConfig {
            data_dir: dir.to_path_buf(),
            stores: vec![format!("sqlite://{}", dir.join("meridian.db").display())],
            http: loopback(),
            tempo_http: Some(loopback()),
            federation: loopback(),
            otlp_grpc: loopback(),
            otlp_http: loopback(),
            default_cluster: model::ClusterId::new("default")?,
            // The in-process sandbox plays several clusters through one
            // plain OTLP sender (the tests are its one trusted sender).
            otlp_trust_cluster_attribute: true,
            registration: ingest::Registration::default(),
            tls: TlsSource::DevCa(dir.join("tls")),
            tls_crl: None,
            max_inflight_bytes: 256 << 20,
            limits: Limits::default(),
            log_format: LogFormat::Text,
            store_options: store::StoreOptions::default(),
            retention_interval: std::time::Duration::from_secs(300),
            stitch: Default::default(),
            cluster: gateway::config::ClusterConfig::single(loopback()),
            tail: Default::default(),
            red: Default::default(),
            alerts: Default::default(),
            auth: Default::default(),
            http_tls: None,
            zipkin_http: Some(loopback()),
        })
    }

    /// Agent settings for `cluster` with a certificate issued for
    /// `cert_cluster` (the same name unless a test wants a mismatch).
    pub fn agent_config(&self, cluster: &str, cert_cluster: &str) -> anyhow::Result<AgentConfig> {
        let out = self.dir.path().join("agent-certs");
        let paths = certs::issue(&self.ca_dir(), &Subject::Cluster(cert_cluster.into()), &out)?;
        Ok(AgentConfig {
            cluster: model::ClusterId::new(cluster)?,
            gateways: vec![format!(
                "https://127.0.0.1:{}",
                self.gateway.federation_addr.port()
            )],
            tls: Some(TlsFiles {
                ca: self.gateway.tls.ca.clone(),
                cert: paths.cert,
                key: paths.key,
            }),
            sampling: Default::default(),
            sampling_addr: loopback(),
            sampling_grpc_addr: Some(loopback()),
            export_otlp: None,
            export_otlp_gzip: true,
            otlp_grpc: loopback(),
            otlp_http: loopback(),
            zipkin: loopback(),
            admin: loopback(),
            buffer_dir: self.dir.path().join(format!("agent-{cluster}")),
            buffer_max_bytes: 64 << 20,
            durability: Durability::Wal,
            buffer_full_policy: FullPolicy::Block,
            group_commit: Duration::from_millis(2),
            limits: Limits::default(),
            log_format: LogFormat::Text,
            tail_verdicts: Some(edge_agent::config::TAIL_VERDICT_TIMEOUT),
        })
    }

    pub async fn start(clusters: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(clusters, |_| {}).await
    }

    /// [`start`](Self::start) with the gateway configuration adjusted by
    /// `configure` first (another store, retention settings, …).
    pub async fn start_with(
        clusters: &[&str],
        configure: impl FnOnce(&mut GatewayConfig),
    ) -> anyhow::Result<Self> {
        init();
        let dir = tempfile::tempdir()?;
        let mut cfg = Self::gateway_config(dir.path())?;
        configure(&mut cfg);
        let stores = cfg.stores.clone();
        let gateway = Gateway::start(cfg).await?;
        let mut sandbox = Self {
            dir,
            gateway,
            agents: BTreeMap::new(),
            http: reqwest::Client::new(),
            stores,
        };
        for c in clusters {
            let cfg = sandbox.agent_config(c, c)?;
            let agent = Agent::start(cfg).await?;
            sandbox.agents.insert((*c).to_owned(), agent);
        }
        Ok(sandbox)
    }

    /// Another member of the gateway cluster: the same store and CA, its
    /// own data dir and ports. The caller shuts it down.
    pub async fn start_peer_gateway(&self, name: &str) -> anyhow::Result<Gateway> {
        self.start_peer_gateway_with(name, |_| {}).await
    }

    /// [`start_peer_gateway`](Self::start_peer_gateway) with its
    /// configuration adjusted by `configure` first.
    pub async fn start_peer_gateway_with(
        &self,
        name: &str,
        configure: impl FnOnce(&mut GatewayConfig),
    ) -> anyhow::Result<Gateway> {
        let dir = self.dir.path().join(format!("gateway-{name}"));
        std::fs::create_dir_all(&dir)?;
        let mut cfg = Self::gateway_config(&dir)?;
        cfg.stores = self.stores.clone();
        cfg.tls = TlsSource::Files {
            ca: self.gateway.tls.ca.clone(),
            cert: self.gateway.tls.cert.clone(),
            key: self.gateway.tls.key.clone(),
        };
        // It joins the sandbox gateway's cluster under the next free id,
        // and is returned once it is a member.
        let id = self
            .gateway
            .plane
            .state()
            .members
            .keys()
            .max()
            .map_or(2, |m| m + 1);
        cfg.cluster.node_id = id;
        cfg.cluster.bootstrap =
            gateway::config::Bootstrap::Join(self.gateway.raft_addr.to_string());
        configure(&mut cfg);
        let gw = Gateway::start(cfg).await?;
        wait_for(
            "the peer gateway to join",
            Duration::from_secs(30),
            || async { gw.plane.state().members.contains_key(&id).then_some(()) },
        )
        .await?;
        Ok(gw)
    }

    pub fn agent(&self, cluster: &str) -> anyhow::Result<&Agent> {
        self.agents
            .get(cluster)
            .with_context(|| format!("no agent for {cluster}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.http_addr, path)
    }

    /// GET a gateway path; returns (status, JSON body).
    pub async fn get_json(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let resp = self.http.get(self.url(path)).send().await?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await?;
        Ok((status, body))
    }

    /// Waits until `/api/traces/{id}` returns a trace with `spans` spans.
    pub async fn wait_for_trace(&self, id_hex: &str, spans: usize) -> anyhow::Result<Value> {
        let path = format!("/api/traces/{id_hex}");
        wait_for(
            &format!("trace {id_hex} with {spans} spans"),
            Duration::from_secs(20),
            || async {
                let (status, body) = self.get_json(&path).await.ok()?;
                let trace = body.get("data")?.get(0)?;
                let n = trace.get("spans")?.as_array()?.len();
                (status == 200 && n >= spans).then(|| trace.clone())
            },
        )
        .await
    }

    pub async fn shutdown(self) {
        for (_, agent) in self.agents {
            agent.shutdown(Duration::from_secs(5)).await;
        }
        self.gateway.shutdown(Duration::from_secs(5)).await;
    }
}

/// Finds the span named `name` in a Jaeger trace JSON.
pub fn span_named<'a>(trace: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    trace["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["operationName"] == name))
        .with_context(|| format!("no span named {name:?} in {trace}"))
}

/// The value of tag `key` in a Jaeger tag list.
pub fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a Value> {
    tags.as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// The process (serviceName, tags) of a span in a Jaeger trace JSON.
pub fn process_of<'a>(trace: &'a Value, span: &Value) -> anyhow::Result<&'a Value> {
    let pid = span["processID"]
        .as_str()
        .context("span without processID")?;
    trace["processes"]
        .get(pid)
        .with_context(|| format!("no process {pid}"))
}

/// CPU seconds (user + system) this process used so far, from
/// `/proc/self/stat` (Linux, 10 ms ticks); 0 when unreadable. For the
/// bench binaries.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The Python interpreter of the OpenTelemetry SDK venv
/// (`$MERIDIAN_PY_VENV`, else `target/py-venv`), created or checked by
/// `scripts/py-venv.sh` first. Blocking: call it off the runtime.
pub fn venv_python() -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var_os("MERIDIAN_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/py-venv"));
    let status = std::process::Command::new("bash")
        .arg(root.join("scripts/py-venv.sh"))
        .arg(&venv)
        .status()
        .context("running scripts/py-venv.sh")?;
    anyhow::ensure!(
        status.success(),
        "scripts/py-venv.sh could not create the Python OpenTelemetry venv"
    );
    Ok(venv.join("bin/python"))
}
