//! Wiring: open the store, bind every port, serve, and shut down in order
//! (ingest ports first, then the query port).

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use proto::federation::federation_server::FederationServer;
use receiver::ReceiverMetrics;
use store::SpanStore;
use telemetry::{
    Shutdown,
    serve::{BindError, bind},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;

use control_plane::{ControlPlane, bootstrap};
use ingest::{ControlView, DirectSink, FederationService, GatewayMetrics, Ingest};
use mtls::certs;

use crate::config::{GatewayConfig, TlsSource};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Tls(#[from] mtls::TlsError),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error("control plane: {0}")]
    Raft(#[from] bootstrap::BootstrapError),
    #[error("--tls-crl: {0}")]
    Crl(#[from] mtls::CrlError),
}

/// The TLS files the federation port uses.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set when a development CA is in use: where `certs issue` finds it.
    pub dev_ca_dir: Option<PathBuf>,
}

/// A running gateway. Addresses are the bound ones (useful with port 0).
#[derive(Debug)]
pub struct Gateway {
    pub http_addr: SocketAddr,
    /// `--tempo-http` as bound; `None` when off.
    pub tempo_addr: Option<SocketAddr>,
    pub federation_addr: SocketAddr,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    /// `--zipkin-http` (bound), `None` when off.
    pub zipkin_http_addr: Option<SocketAddr>,
    pub tls: TlsPaths,
    pub store: Arc<dyn SpanStore>,
    pub metrics: GatewayMetrics,
    /// Publishes what agents are told over `Control` (members, policies);
    /// the control plane owns it, tests publish views directly.
    pub control: tokio::sync::watch::Sender<Arc<ControlView>>,
    /// The Raft port (bound).
    pub raft_addr: SocketAddr,
    /// This gateway's seat in the control plane.
    pub plane: Arc<ControlPlane>,
    /// Cross-cluster tail decisions on this node.
    pub tail: stitch::tail::TailDecisions,
    pub tail_metrics: stitch::tail::metrics::TailMetrics,
    /// The agents this node hears from.
    pub agents: ingest::AgentRegistry,
    root: Shutdown,
    ingest: Shutdown,
}

/// Resolves TLS files, creating the development CA and node certificate on
/// first use.
pub fn resolve_tls(source: &TlsSource) -> Result<TlsPaths, certs::CertError> {
    match source {
        TlsSource::Files { ca, cert, key } => Ok(TlsPaths {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
            dev_ca_dir: None,
        }),
        TlsSource::DevCa(dir) => {
            let ca = certs::ca_paths(dir);
            if !ca.key.exists() {
                certs::init_ca(dir)?;
            }
            let node = dir.join("node-gateway.pem");
            let node_key = dir.join("node-gateway-key.pem");
            if !node.exists() || !node_key.exists() {
                certs::issue(
                    dir,
                    &certs::Subject::Node {
                        name: "gateway".into(),
                        hosts: Vec::new(),
                    },
                    dir,
                )?;
            }
            Ok(TlsPaths {
                ca: ca.cert,
                cert: node,
                key: node_key,
                dev_ca_dir: Some(dir.clone()),
            })
        }
    }
}

impl Gateway {
    pub async fn start(cfg: GatewayConfig) -> Result<Self, GatewayError> {
        let tls_paths = resolve_tls(&cfg.tls)?;
        let server_tls = mtls::server_config(&tls_paths.ca, &tls_paths.cert, &tls_paths.key)?;
        // HTTPS on --http: the files are read before any port is bound.
        let http_tls = match &cfg.http_tls {
            Some(files) => Some(mtls::https_server_config(&files.cert, &files.key)?),
            None => None,
        };
        // Postgres shards follow the cluster's replicated shard map.
        let sharded = if cfg.stores.iter().all(|u| u.starts_with("postgres")) {
            Some(store::open_sharded(&cfg.stores, &cfg.store_options).await?)
        } else {
            None
        };
        let store: Arc<dyn SpanStore> = match &sharded {
            Some(s) => Arc::clone(s) as Arc<dyn SpanStore>,
            None => store::open(&cfg.stores, &cfg.store_options).await?,
        };

        let (fed_l, federation_addr) = bind("federation", cfg.federation).await?;
        let (grpc_l, otlp_grpc_addr) = bind("otlp grpc", cfg.otlp_grpc).await?;
        let (otlp_http_l, otlp_http_addr) = bind("otlp http", cfg.otlp_http).await?;
        let (http_l, http_addr) = bind("http", cfg.http).await?;
        let tempo = match cfg.tempo_http {
            Some(addr) => Some(bind("tempo http", addr).await?),
            None => None,
        };
        let tempo_addr = tempo.as_ref().map(|(_, a)| *a);
        let zipkin = match cfg.zipkin_http {
            Some(addr) => Some(bind("zipkin http", addr).await?),
            None => None,
        };
        let zipkin_http_addr = zipkin.as_ref().map(|(_, a)| *a);
        let (raft_l, raft_addr) = bind("raft", cfg.cluster.raft).await?;

        let mut registry = Registry::default();
        let metrics = GatewayMetrics::register(&mut registry);
        let receiver_metrics = ReceiverMetrics::register(&mut registry);
        let stitch_metrics = stitch::StitchMetrics::register(&mut registry);
        let tail_metrics = stitch::tail::metrics::TailMetrics::register(&mut registry);
        let red_prom = metrics_alerts::red::prom::RedProm::new(cfg.red.prom_max_series);
        registry.register_collector(Box::new(red_prom.clone()));
        let registry = Arc::new(registry);

        let root = Shutdown::new();
        let revocations = match &cfg.tls_crl {
            Some(path) => mtls::Revocations::watch(&root, path, &tls_paths.ca)?,
            None => mtls::Revocations::none(),
        };
        let ingest_sd = root.child();
        // Background jobs: cancelled with everything else at shutdown (a
        // retention pass is idempotent and may stop half-way).
        let jobs = root.stage();

        // The control plane: Raft on its own port; it stops last.
        let me = bootstrap::member(&cfg.cluster, raft_addr, federation_addr, http_addr);
        let plane = bootstrap::start(
            &cfg.cluster,
            &cfg.data_dir,
            bootstrap::TlsFiles {
                ca: &tls_paths.ca,
                cert: &tls_paths.cert,
                key: &tls_paths.key,
                revocations: &revocations,
            },
            Arc::clone(&server_tls),
            raft_l,
            me,
            &root,
            tls_refused(&metrics),
        )
        .await?;
        jobs.spawn(Arc::clone(&plane).run_leases(jobs.token().clone()));
        // Stitching: this node's worker, fed by every node's ingest.
        let stitcher = stitch::Stitcher::start(
            Arc::clone(&plane) as Arc<dyn stitch::PeerBus>,
            Arc::clone(&store),
            cfg.stitch.clone(),
            stitch_metrics,
            &jobs,
        );
        let ingest =
            Ingest::new(Arc::clone(&store), metrics.clone()).with_stitcher(stitcher.clone());
        if let Some(sharded) = &sharded {
            jobs.spawn(crate::upkeep::shards::follow_shards(
                Arc::clone(&plane),
                Arc::clone(sharded),
                cfg.stores.clone(),
                cfg.store_options.clone(),
                jobs.token().clone(),
            ));
        }

        // Federation: mTLS, identity from the client certificate.
        let agents = ingest::AgentRegistry::default();
        let (control, control_feed) =
            tokio::sync::watch::channel(Arc::new(ControlView::single(federation_addr)));
        // Cross-cluster tail decisions: relay for this node's agents,
        // worker for the shards it works on.
        let tail = stitch::tail::TailDecisions::start(
            Arc::clone(&plane) as Arc<dyn stitch::PeerBus>,
            &cfg.tail,
            tail_metrics.clone(),
            Some(stitcher),
            &jobs,
        );
        let federation_service = FederationService::new(
            ingest.clone(),
            metrics.clone(),
            cfg.max_inflight_bytes,
            cfg.limits.max_decompressed_bytes,
            control_feed,
            ingest_sd.token().clone(),
        )
        .with_tail(tail.clone())
        .with_agents(agents.clone())
        .with_registration(cfg.registration)
        .with_removed_probe({
            let plane = Arc::clone(&plane);
            ingest::service::RemovedProbe(Arc::new(move || plane.is_removed()))
        });
        // One byte budget for the port: messages being received, Forward
        // and ForwardWindows being decoded and written.
        let admission = federation_service.admission();
        let max_message = cfg.limits.max_decompressed_bytes + (1 << 16);
        let port_budget = federation_service.port_budget(max_message);
        let federation = FederationServer::new(federation_service)
            .accept_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message);
        jobs.spawn(ingest::view::publish_views(
            plane.subscribe(),
            revocations.subscribe(),
            control.clone(),
            jobs.token().clone(),
        ));
        // RED windows arrive on the federation port too (metrics.proto).
        let red_windows = proto::metrics::metrics_server::MetricsServer::new(
            metrics_alerts::red::ingest::MetricsService::new(
                Arc::clone(&store),
                red_prom,
                cfg.limits.max_decompressed_bytes,
            )
            .with_admission(admission),
        )
        .max_decoding_message_size(max_message);
        jobs.spawn(metrics_alerts::red::rollup::run(
            Arc::clone(&plane) as Arc<dyn control_plane::ControlReader>,
            Arc::clone(&store),
            cfg.red.clone(),
            jobs.token().clone(),
        ));
        // Alerts: evaluated on the leader, notifications from a bounded queue.
        let notifier = metrics_alerts::alerts::notify::start(
            Arc::clone(&plane) as Arc<dyn control_plane::Proposer>,
            Arc::clone(&store),
            cfg.alerts.webhooks.clone(),
            cfg.alerts.ui_url.clone(),
            cfg.red.clock.clone(),
            &jobs,
            jobs.token().clone(),
        );
        jobs.spawn(metrics_alerts::alerts::runner::run(
            Arc::clone(&plane) as Arc<dyn control_plane::Proposer>,
            Arc::clone(&store),
            cfg.red.clone(),
            cfg.alerts.clone(),
            notifier,
            jobs.token().clone(),
        ));
        let incoming = mtls::incoming(fed_l, server_tls, &ingest_sd, tls_refused(&metrics));
        let token = ingest_sd.token().clone();
        ingest_sd.spawn(async move {
            let res = mtls::grpc::server(port_budget)
                .add_service(red_windows)
                .add_service(federation)
                .serve_with_incoming_shutdown(
                    ReceiverStream::new(incoming),
                    token.cancelled_owned(),
                )
                .await;
            if let Err(error) = res {
                tracing::error!(%error, "federation server failed");
            }
        });

        // Plain OTLP for single-node use.
        let sink = DirectSink {
            ingest,
            default_cluster: cfg.default_cluster.clone(),
            trust_cluster_attribute: cfg.otlp_trust_cluster_attribute,
        };
        receiver::grpc::serve(
            &ingest_sd,
            grpc_l,
            sink.clone(),
            cfg.limits,
            receiver_metrics.clone(),
        );
        telemetry::serve::http(
            &ingest_sd,
            "otlp http",
            otlp_http_l,
            receiver::http::otlp_router(sink, cfg.limits, receiver_metrics),
        );
        let http_parts = crate::http::HttpParts {
            store: Arc::clone(&store),
            registry,
            plane: Arc::clone(&plane),
            access: cfg.auth.policy(cfg.cluster.admin_token.as_deref()),
            clock: Arc::clone(plane.clock()),
            limits: query::QueryLimits::from_retention(&cfg.store_options.retention),
            agents: agents.clone(),
            red: cfg.red.clone(),
            alerts_ui_url: cfg.alerts.ui_url.clone(),
        };
        if let Some((tempo_l, _)) = tempo {
            let router = crate::http::tempo_router(&http_parts);
            serve_query(&root, "tempo http", tempo_l, router, http_tls.as_ref());
        }
        if let Some((zipkin_l, _)) = zipkin {
            let keys = store::DEFAULT_INDEXED_TAGS
                .iter()
                .map(|k| (*k).to_owned())
                .chain(cfg.store_options.indexed_tags.iter().cloned())
                .collect();
            let router = crate::http::zipkin_router(&http_parts, keys);
            serve_query(&root, "zipkin http", zipkin_l, router, http_tls.as_ref());
        }
        let http_router = crate::http::router(http_parts);
        serve_query(&root, "http", http_l, http_router, http_tls.as_ref());

        let scope = {
            let plane = Arc::clone(&plane);
            let store = Arc::clone(&store);
            let sharded = sharded.clone();
            Arc::new(move || {
                crate::upkeep::retention::retention_scope(&plane, &store, sharded.as_ref())
            })
        };
        jobs.spawn(crate::upkeep::retention::run(
            scope,
            cfg.store_options.retention.clone(),
            cfg.retention_interval,
            metrics.clone(),
            jobs.token().clone(),
        ));

        tracing::info!(
            http = %http_addr,
            tempo_http = %tempo_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            http_scheme = if http_tls.is_some() { "https" } else { "http" },
            federation = %federation_addr,
            otlp_grpc = %otlp_grpc_addr,
            otlp_http = %otlp_http_addr,
            zipkin_http = %zipkin_http_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            raft = %raft_addr,
            node_id = cfg.cluster.node_id,
            store = %store::describe(&cfg.stores),
            "gateway started"
        );
        if cfg.auth.is_open_by_choice() {
            tracing::warn!(
                http = %http_addr,
                "--auth none: the query API, /metrics and the UI answer anyone who reaches the --http port; use --auth tokens unless a proxy in front authenticates every request"
            );
        }
        if let Some(dir) = &tls_paths.dev_ca_dir {
            tracing::info!(
                ca_dir = %dir.display(),
                "using a development CA; issue agent certificates with `meridian-gateway certs issue --ca-dir {} --cluster NAME --out DIR`",
                dir.display()
            );
        }
        Ok(Self {
            http_addr,
            tempo_addr,
            federation_addr,
            otlp_grpc_addr,
            otlp_http_addr,
            zipkin_http_addr,
            tls: tls_paths,
            store,
            metrics,
            control,
            raft_addr,
            plane,
            tail,
            tail_metrics,
            agents,
            root,
            ingest: ingest_sd,
        })
    }

    /// Stops the ingest ports (in-flight writes finish), then the rest.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.ingest.trigger();
        let clean = self.root.shutdown(grace).await;
        self.plane.shutdown().await;
        clean
    }
}

/// Serves a query port (`--http`, `--tempo-http`, `--zipkin-http`): over
/// HTTPS with the `--http-tls-*` certificate when one is given.
fn serve_query(
    root: &Shutdown,
    what: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<&Arc<rustls::ServerConfig>>,
) {
    match tls {
        Some(config) => telemetry::serve::https(
            root,
            what,
            listener,
            router,
            Arc::clone(config),
            telemetry::serve::Deadlines::default(),
            telemetry::serve::HANDSHAKE_TIMEOUT,
        ),
        None => telemetry::serve::http(root, what, listener, router),
    }
}

/// Counts a connection an mTLS port refused before tonic (a failed
/// handshake, `reason="tls"`; over the per-IP limit, `"handshake_per_ip"`).
fn tls_refused(metrics: &GatewayMetrics) -> mtls::OnRefused {
    let metrics = metrics.clone();
    Arc::new(move |refused: mtls::Refused| metrics.identity_refused(refused.as_str()))
}
