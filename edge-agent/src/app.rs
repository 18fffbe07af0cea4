//! Wiring: bind the receivers, build the buffer and forwarder, run, and shut
//! down in order (receivers first, then the forwarder drains the buffer).

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use receiver::ReceiverMetrics;
use sampling::InvalidPolicy;
use telemetry::{
    Shutdown,
    serve::{self, BindError},
};
use tonic::transport::Endpoint;

use crate::{
    admin,
    buffer::FullPolicy,
    buffer::{Buffer, MemoryBuffer, Wal, WalConfig, WalStats},
    config::{AgentConfig, Durability},
    control::{ControlClient, ControlSettings, ControlStats, Policies, members},
    forward::{
        AckJoin, Backoff, BufferReport, DEAD_LETTER_MAX_BYTES, DeadLetter, DeadLetterStats,
        ForwardConfig, ForwardStats, Forwarder, GatewayDestination, GatewayEndpoints,
        GatewaySettings, OtlpDestination, endpoints::tune,
    },
    red_tap::{RedTap, flush as red_flush},
    sampler::{
        pipeline::{SamplingSink, SamplingStats},
        remote, remote_grpc,
        verdicts::{self, VerdictStats},
    },
    tls,
    verdict_stream::{VerdictStreamClient, VerdictStreamSettings},
};

/// Distinct (service, operation) pairs the RED tap tracks before folding
/// new ones into `other`.
const RED_MAX_SERIES: usize = 2_000;

/// Bytes the RED window buffer holds (about a day of windows for a few
/// hundred series) before it drops the oldest.
const RED_BUFFER_BYTES: u64 = 32 << 20;

/// How long a stop waits for receivers' connections to close.
const RECEIVER_STOP_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("gateway endpoint {url}: {message}")]
    Endpoint { url: String, message: String },
    #[error(transparent)]
    GatewayEndpoint(#[from] crate::forward::endpoints::EndpointError),
    #[error(transparent)]
    Wal(#[from] crate::buffer::WalError),
    #[error(transparent)]
    Sampling(#[from] InvalidPolicy),
    #[error(transparent)]
    DeadLetter(#[from] crate::forward::dead_letter::DeadLetterError),
    #[error("agent state in {dir}: {source}")]
    State {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// WAL segments roll at this size (smaller when the cap is small, so
/// drop-oldest can free space in useful steps).
const WAL_SEGMENT_BYTES: u64 = 16 << 20;

/// A running agent. Addresses are the bound ones (useful with port 0).
#[derive(Debug)]
pub struct Agent {
    pub agent_id: String,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    pub zipkin_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub sampling_addr: SocketAddr,
    /// `--sampling-grpc`, `None` when off.
    pub sampling_grpc_addr: Option<SocketAddr>,
    pub buffer: Buffer,
    /// Gateway forwarding counters.
    pub forward_stats: ForwardStats,
    /// `--export-otlp` counters (`destination="otlp"` on /metrics).
    pub export_stats: ForwardStats,
    pub sampling_stats: SamplingStats,
    /// Cross-cluster tail counters (digests, verdicts, timeouts).
    pub verdict_stats: VerdictStats,
    /// Control stream counters (updates applied, connected).
    pub control_stats: ControlStats,
    pub red: RedTap,
    pub receiver_metrics: ReceiverMetrics,
    /// Batches destinations refused permanently (`<buffer-dir>/dead-letter`).
    pub dead_letter: DeadLetter,
    /// The gateway endpoints (`None` without `--gateway`).
    endpoints: Option<GatewayEndpoints>,
    root: Shutdown,
    receivers: Shutdown,
    sampler: Shutdown,
    forwarder: Shutdown,
}

/// The agent's stable id, kept in `DIR/agent-id` across restarts.
fn agent_id(dir: &Path) -> Result<String, AgentError> {
    let err = |source| AgentError::State {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let path = dir.join("agent-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = hex::encode(rand::random::<[u8; 8]>());
            std::fs::write(&path, &id).map_err(err)?;
            Ok(id)
        }
    }
}

impl Agent {
    #[inline(never)]
    pub fn start(
        cfg: AgentConfig,
    ) -> futures::future::BoxFuture<'static, Result<Self, AgentError>> {
        // Boxed, so that crates awaiting it do not compile its call tree
        // again (ARCHITECTURE.md, "Build time").
        Box::pin(Self::start_inner(cfg))
    }

    async fn start_inner(cfg: AgentConfig) -> Result<Self, AgentError> {
        let agent_id = agent_id(&cfg.buffer_dir)?;
        // `--gateway` first, then the members the cluster named last run.
        let endpoints = match &cfg.tls {
            Some(files) if !cfg.gateways.is_empty() => {
                let urls = members::startup_list(&cfg.gateways, &members::load(&cfg.buffer_dir));
                Some(GatewayEndpoints::new(&urls, tls::client_config(files)?)?)
            }
            _ => None,
        };
        let export_channel = match &cfg.export_otlp {
            Some(url) => Some(
                Endpoint::from_shared(url.clone())
                    .map(tune)
                    .map_err(|e| AgentError::Endpoint {
                        url: url.clone(),
                        message: e.to_string(),
                    })?
                    .connect_lazy(),
            ),
            None => None,
        };

        let (grpc_l, otlp_grpc_addr) = serve::bind("otlp grpc", cfg.otlp_grpc).await?;
        let (http_l, otlp_http_addr) = serve::bind("otlp http", cfg.otlp_http).await?;
        let (zipkin_l, zipkin_addr) = serve::bind("zipkin", cfg.zipkin).await?;
        let (admin_l, admin_addr) = serve::bind("admin", cfg.admin).await?;
        let (sampling_l, sampling_addr) = serve::bind("sampling", cfg.sampling_addr).await?;
        let sampling_grpc = match cfg.sampling_grpc_addr {
            Some(a) => Some(serve::bind("sampling grpc", a).await?),
            None => None,
        };
        let sampling_grpc_addr = sampling_grpc.as_ref().map(|(_, a)| *a);

        let mut registry = Registry::default();
        let receiver_metrics = ReceiverMetrics::register(&mut registry);
        let forward_stats = ForwardStats::register(&mut registry);
        let export_stats = ForwardStats::register(
            registry.sub_registry_with_label(("destination".into(), "otlp".into())),
        );
        let sampling_stats = SamplingStats::register(&mut registry);
        let control_stats = ControlStats::register(&mut registry);
        let verdict_stats = VerdictStats::register(&mut registry);
        let red = RedTap::register(&mut registry, RED_MAX_SERIES);
        let root = Shutdown::new();
        let buffer = match cfg.durability {
            Durability::Memory => {
                let m = Arc::new(MemoryBuffer::with_policy(
                    cfg.buffer_max_bytes,
                    cfg.buffer_full_policy,
                ));
                registry.register(
                    telemetry::metrics::AGENT_BUFFER_BYTES,
                    "Bytes buffered awaiting a gateway ack",
                    m.bytes_gauge(),
                );
                registry
                    .sub_registry_with_label(("reason".into(), "buffer_full".into()))
                    .register(
                        telemetry::metrics::AGENT_SPANS_DROPPED,
                        "Spans dropped by the buffer, by reason",
                        m.dropped_counter(),
                    );
                Buffer::Memory(m)
            }
            Durability::Wal => {
                let stats = WalStats::register(&mut registry);
                let wal = Wal::open(
                    WalConfig {
                        dir: cfg.buffer_dir.join("wal"),
                        segment_bytes: WAL_SEGMENT_BYTES.min(cfg.buffer_max_bytes / 4).max(1 << 16),
                        max_bytes: cfg.buffer_max_bytes,
                        full_policy: cfg.buffer_full_policy,
                        group_commit: cfg.group_commit,
                        cursor_every: crate::buffer::wal::CURSOR_EVERY,
                    },
                    stats,
                    &root,
                )
                .await?;
                Buffer::Wal(wal)
            }
        };
        // Closed RED windows: a buffer of their own, drop-oldest (metrics
        // never push back on span ingest), forwarded beside the spans.
        let red_buffer = match cfg.durability {
            Durability::Memory => Buffer::Memory(Arc::new(MemoryBuffer::with_policy(
                RED_BUFFER_BYTES,
                FullPolicy::DropOldest,
            ))),
            Durability::Wal => Buffer::Wal(
                Wal::open(
                    WalConfig {
                        dir: cfg.buffer_dir.join("red-wal"),
                        segment_bytes: RED_BUFFER_BYTES / 8,
                        max_bytes: RED_BUFFER_BYTES,
                        full_policy: FullPolicy::DropOldest,
                        group_commit: cfg.group_commit,
                        cursor_every: crate::buffer::wal::CURSOR_EVERY,
                    },
                    WalStats::register(
                        registry.sub_registry_with_label(("buffer".into(), "red".into())),
                    ),
                    &root,
                )
                .await?,
            ),
        };
        let dead_letter = DeadLetter::open(
            cfg.buffer_dir.join("dead-letter"),
            DEAD_LETTER_MAX_BYTES,
            DeadLetterStats::register(&mut registry),
        )?;
        let red_stats = ForwardStats::register(
            registry.sub_registry_with_label(("destination".into(), "gateway_red".into())),
        );
        let registry = Arc::new(registry);

        let receivers = root.stage();
        let forwarder_sd = root.stage();
        // The policy in force: the local one until the gateway cluster sends
        // another (the control client below).
        let local_policy = Arc::new(cfg.sampling.clone());
        let policy = Arc::new(std::sync::RwLock::new(Arc::clone(&local_policy)));
        let sink = SamplingSink::new(
            buffer.clone(),
            red.clone(),
            cfg.cluster.clone(),
            Arc::clone(&policy),
            sampling_stats.clone(),
            (cfg.buffer_full_policy == FullPolicy::Block).then_some(cfg.buffer_max_bytes),
        )?;
        // Cross-cluster verdicts: the sampler's end now, the stream client
        // (below) once the gateway endpoints exist.
        let (sink, digest_feed) = match (cfg.tail_verdicts, &endpoints) {
            (Some(timeout), Some(_)) => {
                let (link, feed) = verdicts::link(timeout, verdict_stats.clone());
                (sink.with_verdicts(link), Some(feed))
            }
            _ => (sink, None),
        };
        let sampler = root.stage();
        {
            // Stopped after the receivers: it decides every held trace and
            // buffers the kept ones before the forwarders drain. It runs
            // without a tail policy too, as the gateway may send one.
            let ticker = sink.clone();
            let sd = sampler.clone();
            sampler.spawn(async move { ticker.run_ticker(sd).await });
            // Closes RED windows; at the stop (after the receivers) it
            // flushes the open one, before the forwarders drain.
            let (tap, buf, sd) = (red.clone(), red_buffer.clone(), sampler.clone());
            let epoch = u64::try_from(red_flush_epoch()).unwrap_or(0);
            sampler.spawn(async move { red_flush::run(tap, buf, epoch, sd).await });
        }

        let verdict_sink = sink.clone();
        receiver::grpc::serve(
            &receivers,
            grpc_l,
            sink.clone(),
            cfg.limits,
            receiver_metrics.clone(),
        );
        serve::http(
            &receivers,
            "otlp http",
            http_l,
            receiver::http::otlp_router(sink.clone(), cfg.limits, receiver_metrics.clone()),
        );
        serve::http(
            &receivers,
            "zipkin",
            zipkin_l,
            receiver::http::zipkin_router(sink, cfg.limits, receiver_metrics.clone()),
        );
        // The admin port stays up until the very end.
        serve::http(&root, "admin", admin_l, admin::router(registry));
        serve::http(
            &root,
            "sampling",
            sampling_l,
            remote::router(cfg.cluster.to_string(), Arc::clone(&policy)),
        );
        if let Some((l, _)) = sampling_grpc {
            let svc = remote_grpc::GrpcSampling::new(cfg.cluster.to_string(), Arc::clone(&policy));
            remote_grpc::serve(&root, l, svc);
        }

        let fcfg = ForwardConfig {
            max_batch_bytes: 4 << 20,
            max_batch_records: 512,
            max_inflight: 4,
            backoff: Backoff::default(),
        };
        let destinations = usize::from(endpoints.is_some()) + usize::from(export_channel.is_some());
        let acks = AckJoin::new(buffer.clone(), destinations);
        let mut slot = 0;
        if let Some(endpoints) = &endpoints {
            // Follow the gateway cluster: its members and sampling policy.
            let control = root.stage();
            let client = ControlClient::new(
                ControlSettings {
                    agent_id: agent_id.clone(),
                    cluster: cfg.cluster.to_string(),
                    state_dir: cfg.buffer_dir.clone(),
                },
                endpoints.clone(),
                Policies {
                    running: Arc::clone(&policy),
                    local: local_policy,
                },
                control_stats.clone(),
            );
            let sd = control.clone();
            control.spawn(async move { client.run(sd).await });
            if let Some(feed) = digest_feed {
                let client = VerdictStreamClient::new(
                    VerdictStreamSettings {
                        agent_id: agent_id.clone(),
                        cluster: cfg.cluster.to_string(),
                    },
                    endpoints.clone(),
                    verdict_sink.clone(),
                    feed,
                    verdict_stats.clone(),
                );
                let sd = control.clone();
                control.spawn(async move { client.run(sd).await });
            }

            let dest = GatewayDestination::new(
                GatewaySettings {
                    agent_id: agent_id.clone(),
                    cluster: cfg.cluster.to_string(),
                    timeout: Duration::from_secs(30),
                    zstd_level: 1,
                    report: Some(BufferReport {
                        buffer: buffer.clone(),
                        capacity_bytes: cfg.buffer_max_bytes,
                    }),
                },
                endpoints.clone(),
                forward_stats.clone(),
            );
            let f = Forwarder::new(
                "gateway",
                fcfg.clone(),
                buffer.clone(),
                dest,
                acks.clone(),
                slot,
                forward_stats.clone(),
            )
            .with_dead_letter(dead_letter.clone());
            let fsd = forwarder_sd.clone();
            forwarder_sd.spawn(async move { f.run(fsd, Duration::from_secs(10)).await });
            slot += 1;

            let dest = GatewayDestination::red_windows(
                GatewaySettings {
                    agent_id: agent_id.clone(),
                    cluster: cfg.cluster.to_string(),
                    timeout: Duration::from_secs(30),
                    zstd_level: 1,
                    report: None,
                },
                endpoints.clone(),
                red_stats.clone(),
            );
            let f = Forwarder::new(
                "gateway_red",
                ForwardConfig {
                    max_inflight: 1,
                    ..fcfg.clone()
                },
                red_buffer.clone(),
                dest,
                AckJoin::new(red_buffer.clone(), 1),
                0,
                red_stats,
            );
            let fsd = forwarder_sd.clone();
            forwarder_sd.spawn(async move { f.run(fsd, Duration::from_secs(10)).await });
        }
        if let (Some(ch), Some(url)) = (export_channel, &cfg.export_otlp) {
            let dest = OtlpDestination::new(
                url.clone(),
                ch,
                cfg.export_otlp_gzip,
                Duration::from_secs(30),
                export_stats.clone(),
            );
            let f = Forwarder::new(
                "otlp",
                fcfg,
                buffer.clone(),
                dest,
                acks,
                slot,
                export_stats.clone(),
            )
            .with_dead_letter(dead_letter.clone());
            let fsd = forwarder_sd.clone();
            forwarder_sd.spawn(async move { f.run(fsd, Duration::from_secs(10)).await });
        }

        tracing::info!(
            cluster = %cfg.cluster,
            agent_id,
            otlp_grpc = %otlp_grpc_addr,
            otlp_http = %otlp_http_addr,
            zipkin = %zipkin_addr,
            admin = %admin_addr,
            sampling = %sampling_addr,
            sampling_grpc = %sampling_grpc_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            gateways = ?cfg.gateways,
            export_otlp = cfg.export_otlp.as_deref().unwrap_or(""),
            "agent started"
        );
        Ok(Self {
            agent_id,
            otlp_grpc_addr,
            otlp_http_addr,
            zipkin_addr,
            admin_addr,
            sampling_addr,
            sampling_grpc_addr,
            buffer,
            forward_stats,
            export_stats,
            sampling_stats,
            verdict_stats,
            control_stats,
            red,
            receiver_metrics,
            dead_letter,
            endpoints,
            root,
            receivers,
            sampler,
            forwarder: forwarder_sd,
        })
    }

    /// The gateway endpoints the forwarder fails over among now (`--gateway`
    /// until the cluster sends its members).
    pub fn gateway_urls(&self) -> Vec<String> {
        self.endpoints
            .as_ref()
            .map(GatewayEndpoints::urls)
            .unwrap_or_default()
    }

    /// Stops receiving, lets the forwarder drain the buffer, then stops.
    /// Returns false when `grace` ran out before every task ended.
    #[inline(never)]
    pub fn shutdown(self, grace: Duration) -> futures::future::BoxFuture<'static, bool> {
        Box::pin(self.shutdown_inner(grace))
    }

    async fn shutdown_inner(self, grace: Duration) -> bool {
        let Self {
            root,
            receivers,
            sampler,
            forwarder,
            buffer,
            ..
        } = self;
        // Receivers first (requests in flight finish; clients that keep
        // connections open do not hold the stop up for long), then the tail
        // sampler's final flush, so the forwarders drain everything that
        // was accepted.
        let started = tokio::time::Instant::now();
        let receivers_clean = receivers.shutdown(grace.min(RECEIVER_STOP_WAIT)).await;
        let receivers_ms = started.elapsed().as_millis() as u64;
        sampler
            .shutdown(grace.saturating_sub(started.elapsed()))
            .await;
        let sampler_ms = started.elapsed().as_millis() as u64;
        forwarder.trigger();
        // The WAL writer ends once every handle is gone (after the
        // receivers and the forwarder dropped theirs), having answered every
        // pending append.
        drop(buffer);
        let grace = grace.saturating_sub(started.elapsed());
        let clean = root.shutdown(grace).await;
        tracing::info!(
            receivers_ms,
            receivers_clean,
            sampler_ms,
            total_ms = started.elapsed().as_millis() as u64,
            clean,
            "agent stopped"
        );
        clean
    }
}

/// This process's RED epoch: when it started, in ms.
fn red_flush_epoch() -> i64 {
    telemetry::clock::unix_ms()
}
