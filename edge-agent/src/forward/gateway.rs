//! The gateway destination: `federation.proto` `Forward` over mTLS gRPC.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use proto::federation::{Compression, ForwardRequest, federation_client::FederationClient};
use tonic::transport::Channel;

use super::{Destination, ForwardStats, Outcome};
use crate::buffer::Record;

/// Identity and encoding of forwarded batches.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub agent_id: String,
    pub cluster: String,
    /// Per-attempt deadline.
    pub timeout: Duration,
    pub zstd_level: i32,
}

/// Fails over between several gateway endpoints.
#[derive(Debug)]
pub struct GatewayDestination {
    settings: Arc<GatewaySettings>,
    clients: Vec<(String, FederationClient<Channel>)>,
    current: usize,
    stats: ForwardStats,
}

impl GatewayDestination {
    pub fn new(
        settings: GatewaySettings,
        channels: Vec<(String, Channel)>,
        stats: ForwardStats,
    ) -> Self {
        let clients = channels
            .into_iter()
            .map(|(name, ch)| {
                let client = FederationClient::new(ch)
                    .max_decoding_message_size(1 << 20)
                    .max_encoding_message_size(64 << 20);
                (name, client)
            })
            .collect();
        Self {
            settings: Arc::new(settings),
            clients,
            current: 0,
            stats,
        }
    }
}

impl Destination for GatewayDestination {
    fn failover(&mut self) {
        if self.clients.len() > 1 {
            self.current = (self.current + 1) % self.clients.len();
        }
    }

    fn send(&mut self, batch: Arc<[Record]>) -> BoxFuture<'static, Outcome> {
        let Some((name, client)) = self.clients.get(self.current).cloned() else {
            return Box::pin(async { Outcome::Retry(None) });
        };
        let settings = Arc::clone(&self.settings);
        let stats = self.stats.clone();
        Box::pin(async move { send(settings, name, client, stats, batch).await })
    }
}

async fn send(
    cfg: Arc<GatewaySettings>,
    name: String,
    mut client: FederationClient<Channel>,
    stats: ForwardStats,
    batch: Arc<[Record]>,
) -> Outcome {
    let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload.as_ref()).collect();
    let (payload, uncompressed) = match proto::payload::encode(&payloads, cfg.zstd_level) {
        Ok(p) => p,
        Err(error) => {
            tracing::error!(%error, "compressing a batch failed");
            return Outcome::Retry(None);
        }
    };
    let spans: u64 = batch.iter().map(|r| r.spans).sum();
    let first = batch.first().map_or(0, |r| r.seq);
    let last = batch.last().map_or(0, |r| r.seq);
    let mut req = tonic::Request::new(ForwardRequest {
        agent_id: cfg.agent_id.clone(),
        cluster: cfg.cluster.clone(),
        first_sequence: first,
        last_sequence: last,
        compression: Compression::Zstd as i32,
        payload,
        uncompressed_size: uncompressed,
        span_count: spans,
    });
    req.set_timeout(cfg.timeout);
    match client.forward(req).await {
        Ok(resp) => {
            let resp = resp.into_inner();
            stats.gateway_up(true);
            if resp.rejected_spans > 0 {
                tracing::warn!(
                    gateway = %name,
                    rejected = resp.rejected_spans,
                    message = %resp.error_message,
                    "gateway rejected some spans as invalid"
                );
            }
            Outcome::Committed
        }
        Err(status) => super::on_error(&status, &name, spans, &stats),
    }
}
