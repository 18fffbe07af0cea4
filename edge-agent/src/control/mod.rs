//! The control client: follows the gateway cluster over the federation
//! `Control` stream (`federation.proto`).
//!
//! One task per agent holds one stream to one gateway (mTLS, the channels of
//! the shared [`GatewayEndpoints`]). Each update is a complete state:
//! - its member list replaces the endpoint list the forwarder fails over
//!   among (an empty or unusable list is ignored, so the agent is never left
//!   without endpoints), and is remembered in `DIR/gateways` ([`members`]);
//! - its sampling policy replaces the agent's policy, or, when the gateway
//!   has none for this cluster, the local one comes back ([`policy`]); an
//!   invalid policy is refused with a warning and the agent keeps its own.
//!
//! When the stream fails, ends (the gateway stopped), or is silent for
//! [`IDLE_TIMEOUT`] (three gateway keepalives), the client reconnects to the
//! next endpoint after a jittered backoff ([`crate::reconnect`]). Bounds: one stream, one update
//! held at a time (the gateway sends latest-wins states, so a slow agent
//! never queues), updates of at most [`MAX_UPDATE_BYTES`].

pub mod members;
pub mod policy;

use std::{path::PathBuf, sync::Arc, time::Duration};

use model::sampling::SamplingConfig;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use proto::federation::{ControlRequest, ControlUpdate, federation_client::FederationClient};
use telemetry::{Shutdown, metrics as names};

use crate::{
    forward::endpoints::{GatewayEndpoints, Replaced},
    reconnect::{BACKOFF, Ended, Rotation},
    sampler::pipeline::{self, SharedPolicy},
};

/// Gateways send a keepalive every 30 s; three missed ones mean the stream
/// (or the gateway) is gone even if TCP has not noticed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest update accepted (a member list and one policy as JSON).
pub const MAX_UPDATE_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Control client counters on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ControlStats {
    updates: Family<Outcome, Counter>,
    connected: Gauge,
}

impl ControlStats {
    pub fn register(registry: &mut Registry) -> Self {
        let s = Self::default();
        registry.register(
            names::AGENT_CONTROL_UPDATES,
            "Control updates received from the gateway, by outcome (applied, unchanged, invalid_policy)",
            s.updates.clone(),
        );
        registry.register(
            names::AGENT_CONTROL_CONNECTED,
            "1 while the control stream to a gateway is open",
            s.connected.clone(),
        );
        s
    }

    fn update(&self, outcome: &'static str) {
        self.updates.get_or_create(&Outcome { outcome }).inc();
    }

    /// Updates received with `outcome` so far.
    pub fn updates(&self, outcome: &'static str) -> u64 {
        self.updates.get_or_create(&Outcome { outcome }).get()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.get() == 1
    }
}

/// The agent's running policy and the local one it falls back to.
#[derive(Debug, Clone)]
pub struct Policies {
    /// What the samplers and `/sampling` read.
    pub running: SharedPolicy,
    /// `--sampling-config` (or the keep-everything default).
    pub local: Arc<SamplingConfig>,
}

/// Who the agent is, to the gateway.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub agent_id: String,
    pub cluster: String,
    /// Where the member list is remembered (the agent's `--buffer-dir`).
    pub state_dir: PathBuf,
}

/// Follows the gateway cluster until shutdown.
#[derive(Debug)]
pub struct ControlClient {
    settings: ControlSettings,
    endpoints: GatewayEndpoints,
    policies: Policies,
    stats: ControlStats,
}

impl ControlClient {
    pub fn new(
        settings: ControlSettings,
        endpoints: GatewayEndpoints,
        policies: Policies,
        stats: ControlStats,
    ) -> Self {
        Self {
            settings,
            endpoints,
            policies,
            stats,
        }
    }

    pub async fn run(self, shutdown: Shutdown) {
        let mut rotation = Rotation::new(self.endpoints.clone(), &self.settings.agent_id, BACKOFF);
        loop {
            let Some(endpoint) = rotation.next_endpoint() else {
                // The list is never empty; nothing to follow if it were.
                tracing::error!("no gateway endpoint to follow");
                return;
            };
            let ended = self
                .follow(&endpoint.url, endpoint.channel, &shutdown)
                .await;
            let lost = "control stream lost; following another gateway";
            if !rotation.after(&endpoint.url, ended, lost, &shutdown).await {
                return;
            }
        }
    }

    /// Opens a stream to `url` and applies its updates until it ends.
    async fn follow(
        &self,
        url: &str,
        channel: tonic::transport::Channel,
        shutdown: &Shutdown,
    ) -> Ended {
        let mut client = FederationClient::new(channel).max_decoding_message_size(MAX_UPDATE_BYTES);
        let req = ControlRequest {
            agent_id: self.settings.agent_id.clone(),
            cluster: self.settings.cluster.clone(),
        };
        let mut stream = match crate::reconnect::open_stream(client.control(req), shutdown).await {
            Ok(s) => s,
            Err(ended) => return ended,
        };
        tracing::info!(gateway = url, "following the gateway cluster");
        self.stats.connected.set(1);
        let mut worked = false;
        let mut last_sequence = None;
        let ended = loop {
            let next = tokio::select! {
                m = tokio::time::timeout(IDLE_TIMEOUT, stream.message()) => m,
                _ = shutdown.cancelled() => break Ended::Shutdown,
            };
            match next {
                Ok(Ok(Some(update))) => {
                    worked = true;
                    if last_sequence == Some(update.sequence) {
                        // A keepalive: applied (or refused) already.
                        self.stats.update("unchanged");
                        continue;
                    }
                    last_sequence = Some(update.sequence);
                    self.apply(&update).await;
                }
                Ok(Ok(None)) => {
                    break Ended::Lost {
                        reason: "the gateway ended the stream".into(),
                        worked,
                    };
                }
                Ok(Err(status)) => {
                    break Ended::Lost {
                        reason: format!("{:?}: {}", status.code(), status.message()),
                        worked,
                    };
                }
                Err(_) => {
                    break Ended::Lost {
                        reason: format!("no update for {IDLE_TIMEOUT:?}"),
                        worked,
                    };
                }
            }
        };
        self.stats.connected.set(0);
        ended
    }

    /// Applies one update: the member list, then the policy.
    async fn apply(&self, update: &ControlUpdate) {
        let mut changed = false;
        match self.endpoints.replace(&update.gateways) {
            Replaced::Changed(urls) => {
                changed = true;
                tracing::info!(gateways = ?urls, "gateway members changed");
                if let Err(error) = members::store(&self.settings.state_dir, &urls).await {
                    tracing::warn!(%error, "cannot remember the gateway members");
                }
            }
            Replaced::Unchanged => {}
            Replaced::Ignored => {
                if !update.gateways.is_empty() {
                    tracing::warn!(
                        offered = ?update.gateways,
                        "no usable endpoint in the gateway member list; keeping ours"
                    );
                }
            }
        }
        let running = pipeline::snapshot(&self.policies.running);
        match policy::choose(&running, &self.policies.local, &update.sampling_policy_json) {
            Ok(Some((cfg, source))) => {
                changed = true;
                pipeline::install(&self.policies.running, cfg);
                tracing::info!(
                    source = source.as_str(),
                    sequence = update.sequence,
                    "sampling policy changed"
                );
            }
            Ok(None) => {}
            Err(error) => {
                self.stats.update("invalid_policy");
                tracing::warn!(%error, sequence = update.sequence, "keeping the current sampling policy");
                return;
            }
        }
        self.stats
            .update(if changed { "applied" } else { "unchanged" });
    }
}
