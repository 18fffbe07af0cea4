//! `meridian-gateway demo`: a gateway on the embedded store plus in-process
//! agents for several simulated clusters, talking real mTLS on loopback,
//! fed with synthetic traces that cross clusters.

mod traffic;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use edge_agent::{
    Agent, AgentConfig,
    buffer::FullPolicy,
    config::{Durability, TlsFiles},
};
use proto::otlp::TraceServiceClient;
use receiver::Limits;
use telemetry::LogFormat;

pub use traffic::Traffic;

use mtls::certs::{self, Subject};

use crate::{
    Gateway,
    config::{ClusterConfig, GatewayConfig, TlsSource},
};

/// Demo settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the demo keeps its store and certificates [default: a new
    /// temporary directory, removed at exit].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Query API / UI address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:16686")]
    pub http: String,
    /// Simulated clusters, each with its own agent and certificate.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=8))]
    pub clusters: u16,
    /// Traces generated per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

const CLUSTER_NAMES: [&str; 8] = [
    "us-east", "eu-west", "ap-south", "us-west", "eu-north", "ap-east", "sa-east", "af-south",
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("meridian-demo-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let http: SocketAddr = telemetry::config::listen_addr("http", &args.http)?;
    let loopback: SocketAddr = "127.0.0.1:0".parse()?;
    let tls_dir = data_dir.join("tls");
    let gateway = Gateway::start(GatewayConfig {
        data_dir: data_dir.clone(),
        stores: vec![format!(
            "sqlite://{}",
            data_dir.join("meridian.db").display()
        )],
        http,
        // The demo serves one port; `run` serves the Tempo API.
        tempo_http: None,
        federation: loopback,
        otlp_grpc: loopback,
        otlp_http: loopback,
        default_cluster: model::ClusterId::new("default")?,
        otlp_trust_cluster_attribute: false,
        registration: ingest::Registration::default(),
        tls: TlsSource::DevCa(tls_dir.clone()),
        tls_crl: None,
        max_inflight_bytes: 256 << 20,
        limits: Limits::default(),
        log_format: LogFormat::Text,
        store_options: store::StoreOptions::default(),
        retention_interval: std::time::Duration::from_secs(300),
        stitch: Default::default(),
        cluster: ClusterConfig::single(loopback),
        tail: Default::default(),
        red: Default::default(),
        alerts: Default::default(),
        // Beyond loopback the demo refuses, as `run` does without --auth.
        auth: crate::config::AuthConfig::new(None, crate::config::ProxyFlags::default(), http)?,
        http_tls: None,
        zipkin_http: None,
    })
    .await?;

    let mut agents = Vec::new();
    let mut clients = Vec::new();
    for name in CLUSTER_NAMES.iter().take(usize::from(args.clusters)) {
        let paths = match certs::issue(&tls_dir, &Subject::Cluster((*name).into()), &tls_dir) {
            Ok(p) => p,
            Err(e) => anyhow::bail!("issuing the {name} certificate: {e}"),
        };
        let agent = Agent::start(AgentConfig {
            cluster: model::ClusterId::new(name)?,
            gateways: vec![format!(
                "https://127.0.0.1:{}",
                gateway.federation_addr.port()
            )],
            tls: Some(TlsFiles {
                ca: gateway.tls.ca.clone(),
                cert: paths.cert,
                key: paths.key,
            }),
            sampling: Default::default(),
            sampling_addr: loopback,
            sampling_grpc_addr: Some(loopback),
            export_otlp: None,
            export_otlp_gzip: true,
            otlp_grpc: loopback,
            otlp_http: loopback,
            zipkin: loopback,
            admin: loopback,
            buffer_dir: data_dir.join(format!("agent-{name}")),
            buffer_max_bytes: 64 << 20,
            durability: Durability::Wal,
            buffer_full_policy: FullPolicy::Block,
            group_commit: Duration::from_millis(2),
            limits: Limits::default(),
            log_format: LogFormat::Text,
            tail_verdicts: Some(edge_agent::config::TAIL_VERDICT_TIMEOUT),
        })
        .await?;
        let client =
            TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
        clients.push(client);
        agents.push(agent);
    }

    let base = format!("http://{}", gateway.http_addr);
    let mut out = String::new();
    out.push_str(&format!(
        "\nMeridian demo: gateway + {} agents ({}) over mTLS on loopback, embedded store in {}\n",
        agents.len(),
        CLUSTER_NAMES[..agents.len()].join(", "),
        data_dir.display()
    ));
    out.push_str(&format!("  UI / API:       {base}/\n"));
    out.push_str(&format!("  services:       {base}/api/services\n"));
    out.push_str(&format!(
        "  search:         {base}/api/traces?service=frontend&limit=20\n"
    ));
    out.push_str(&format!(
        "  errors:         {base}/api/traces?service=frontend&tags=%7B%22error%22%3A%22true%22%7D\n"
    ));
    out.push_str(&format!("  metrics:        {base}/metrics\n"));
    for (agent, name) in agents.iter().zip(CLUSTER_NAMES) {
        out.push_str(&format!(
            "  agent {name:<9} OTLP gRPC {} · OTLP HTTP {} · Zipkin {}\n",
            agent.otlp_grpc_addr, agent.otlp_http_addr, agent.zipkin_addr
        ));
    }
    eprintln!("{out}");

    let mut traffic = Traffic::new(telemetry::clock::unix_nanos(), agents.len());
    let period = Duration::from_secs_f64(1.0 / args.rate.clamp(0.1, 10_000.0));
    let mut tick = tokio::time::interval(period);
    let stop_at = args
        .duration
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut sent = 0u64;
    let mut shown = false;
    // One signal listener for the whole run: a fresh one per tick would
    // miss a SIGTERM that lands while the exports are in flight (tokio only
    // reports signals to listeners that existed when they arrived).
    let stop = telemetry::signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        if stop_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
            break;
        }
        let (id, reqs) = traffic.trace(telemetry::clock::unix_nanos());
        for (client, req) in clients.iter_mut().zip(reqs) {
            if let Err(status) = client.export(req).await {
                tracing::warn!(%status, "demo export failed");
            }
        }
        sent += 1;
        if !shown && sent == 3 {
            shown = true;
            eprintln!(
                "  a stitched trace: {base}/api/traces/{}\n",
                hex::encode(id)
            );
        }
    }
    eprintln!("stopping: {sent} traces sent");
    // Close the SDK-side connections first, so the agents' receivers stop
    // at once.
    drop(clients);
    futures::future::join_all(
        agents
            .into_iter()
            .map(|agent| agent.shutdown(Duration::from_secs(10))),
    )
    .await;
    gateway.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
