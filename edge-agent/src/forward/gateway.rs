//! The gateway destination: `federation.proto` `Forward` over mTLS gRPC,
//! to one endpoint of the shared [`GatewayEndpoints`] list at a time. The
//! RED buffer's destination ([`GatewayDestination::red_windows`]) is the
//! same with `metrics.proto` `ForwardWindows`.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use proto::{
    federation::{AgentStatus, Compression, ForwardRequest, federation_client::FederationClient},
    metrics::{ForwardWindowsRequest, metrics_client::MetricsClient},
};
use tonic::transport::Channel;

use super::{
    Destination, ForwardStats, Outcome,
    endpoints::{EndpointList, GatewayEndpoints, carry_over},
};
use crate::buffer::{Buffer, Record};

/// Identity and encoding of forwarded batches.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub agent_id: String,
    pub cluster: String,
    /// Per-attempt deadline.
    pub timeout: Duration,
    pub zstd_level: i32,
    /// The buffer reported in every batch's [`AgentStatus`] (`None`: no
    /// status is sent, as for RED windows).
    pub report: Option<BufferReport>,
}

/// The span buffer whose state goes to the gateway with each batch.
#[derive(Debug, Clone)]
pub struct BufferReport {
    pub buffer: Buffer,
    /// `--buffer-max-bytes`.
    pub capacity_bytes: u64,
}

impl BufferReport {
    /// The buffer's state now.
    pub fn status(&self) -> AgentStatus {
        let (records, used, spans) = self.buffer.usage();
        AgentStatus {
            buffer_used_bytes: used,
            buffer_capacity_bytes: self.capacity_bytes,
            buffer_spans: spans,
            buffer_records: records as u64,
            // Records carry no append time: unknown.
            oldest_record_age_ms: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Sends to one endpoint of the shared list and fails over to the next in
/// order. When the list is replaced (the control client learned the
/// cluster's members) it stays on its endpoint if the new list has it.
#[derive(Debug)]
pub struct GatewayDestination {
    settings: Arc<GatewaySettings>,
    endpoints: GatewayEndpoints,
    /// The list `current` indexes into.
    list: Arc<EndpointList>,
    current: usize,
    /// Where to start in a new list that lacks the current endpoint.
    spread: u64,
    stats: ForwardStats,
    /// Spans (`Forward`) or RED windows (`ForwardWindows`).
    red: bool,
    /// The endpoint whose last answer announced the columnar encoding.
    columns: Arc<std::sync::Mutex<Option<String>>>,
}

impl GatewayDestination {
    /// Sends RED window records (see `sampling::red::flush`) instead of
    /// spans.
    pub fn red_windows(
        settings: GatewaySettings,
        endpoints: GatewayEndpoints,
        stats: ForwardStats,
    ) -> Self {
        Self {
            red: true,
            ..Self::new(settings, endpoints, stats)
        }
    }

    pub fn new(
        settings: GatewaySettings,
        endpoints: GatewayEndpoints,
        stats: ForwardStats,
    ) -> Self {
        let spread = u64::from(crc32fast::hash(settings.agent_id.as_bytes()));
        Self {
            settings: Arc::new(settings),
            list: endpoints.current(),
            endpoints,
            current: 0,
            spread,
            stats,
            red: false,
            columns: Arc::default(),
        }
    }

    /// Moves to the newest list, keeping the endpoint in use if it has it.
    /// False when the endpoint in use is gone from the list.
    fn refresh(&mut self) -> bool {
        let latest = self.endpoints.current();
        if latest.generation == self.list.generation {
            return true;
        }
        let in_use = self.list.get(self.current).map(|e| e.url.clone());
        let urls = latest.urls();
        self.current = carry_over(in_use.as_deref(), &urls, self.spread);
        self.list = latest;
        in_use.is_some_and(|u| urls.contains(&u))
    }
}

impl Destination for GatewayDestination {
    fn failover(&mut self) {
        // When the failed endpoint left the list, `refresh` already moved
        // away from it.
        if self.refresh() && self.list.len() > 1 {
            self.current = (self.current + 1) % self.list.len();
        }
    }

    fn send(&mut self, batch: Arc<[Record]>) -> BoxFuture<'static, Outcome> {
        self.refresh();
        let Some(endpoint) = self.list.get(self.current) else {
            return Box::pin(async { Outcome::Retry(None) });
        };
        let name = endpoint.url.clone();
        if self.red {
            let client = MetricsClient::new(endpoint.channel.clone())
                .max_decoding_message_size(1 << 20)
                .max_encoding_message_size(64 << 20);
            let settings = Arc::clone(&self.settings);
            let stats = self.stats.clone();
            return Box::pin(
                async move { send_windows(settings, name, client, stats, batch).await },
            );
        }
        let client = FederationClient::new(endpoint.channel.clone())
            .max_decoding_message_size(1 << 20)
            .max_encoding_message_size(64 << 20);
        let settings = Arc::clone(&self.settings);
        let stats = self.stats.clone();
        let columns = Arc::clone(&self.columns);
        Box::pin(async move { send(settings, name, client, stats, batch, columns).await })
    }
}

async fn send(
    cfg: Arc<GatewaySettings>,
    name: String,
    mut client: FederationClient<Channel>,
    stats: ForwardStats,
    batch: Arc<[Record]>,
    columns: Arc<std::sync::Mutex<Option<String>>>,
) -> Outcome {
    let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload.as_ref()).collect();
    // The columnar encoding only to a gateway that announced it.
    let want = match columns.lock() {
        Ok(g) if g.as_deref() == Some(name.as_str()) => Compression::OtlpColumnsZstd,
        _ => Compression::Zstd,
    };
    let (payload, uncompressed, used) =
        match proto::payload::encode_as(want, &payloads, cfg.zstd_level) {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(%error, "compressing a batch failed");
                return Outcome::Retry(None);
            }
        };
    stats.payload(payload.len() as u64, uncompressed);
    if used == Compression::OtlpColumnsZstd {
        stats.columnar_batch();
    }
    let spans: u64 = batch.iter().map(|r| r.spans).sum();
    let first = batch.first().map_or(0, |r| r.seq);
    let last = batch.last().map_or(0, |r| r.seq);
    let mut req = tonic::Request::new(ForwardRequest {
        agent_id: cfg.agent_id.clone(),
        cluster: cfg.cluster.clone(),
        first_sequence: first,
        last_sequence: last,
        compression: used as i32,
        payload,
        uncompressed_size: uncompressed,
        span_count: spans,
        status: cfg.report.as_ref().map(BufferReport::status),
    });
    req.set_timeout(cfg.timeout);
    match client.forward(req).await {
        Ok(resp) => {
            let resp = resp.into_inner();
            stats.gateway_up(true);
            let announced = resp
                .accepted_compressions
                .contains(&(Compression::OtlpColumnsZstd as i32));
            if let Ok(mut g) = columns.lock() {
                if announced {
                    *g = Some(name.clone());
                } else if g.as_deref() == Some(name.as_str()) {
                    *g = None;
                }
            }
            if resp.rejected_spans > 0 {
                stats.rejected(resp.rejected_spans);
                tracing::warn!(
                    gateway = %name,
                    rejected = resp.rejected_spans,
                    foreign_cluster = resp.foreign_cluster_spans,
                    message = %resp.error_message,
                    "gateway rejected some spans of a committed batch"
                );
            }
            Outcome::Committed
        }
        Err(status) => super::on_error(&status, &name, spans, &stats),
    }
}

async fn send_windows(
    cfg: Arc<GatewaySettings>,
    name: String,
    mut client: MetricsClient<Channel>,
    stats: ForwardStats,
    batch: Arc<[Record]>,
) -> Outcome {
    let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload.as_ref()).collect();
    let (payload, uncompressed) = match proto::payload::encode(&payloads, cfg.zstd_level) {
        Ok(p) => p,
        Err(error) => {
            tracing::error!(%error, "compressing red windows failed");
            return Outcome::Retry(None);
        }
    };
    let series: u64 = batch.iter().map(|r| r.spans).sum();
    let mut req = tonic::Request::new(ForwardWindowsRequest {
        agent_id: cfg.agent_id.clone(),
        cluster: cfg.cluster.clone(),
        first_sequence: batch.first().map_or(0, |r| r.seq),
        last_sequence: batch.last().map_or(0, |r| r.seq),
        compression: Compression::Zstd as i32,
        payload,
        uncompressed_size: uncompressed,
    });
    req.set_timeout(cfg.timeout);
    match client.forward_windows(req).await {
        Ok(_) => {
            stats.gateway_up(true);
            Outcome::Committed
        }
        Err(status) => super::on_error(&status, &name, series, &stats),
    }
}

#[cfg(test)]
mod tests {
    use tonic::transport::ClientTlsConfig;

    use super::*;

    fn dest(urls: &[&str]) -> (GatewayDestination, GatewayEndpoints) {
        telemetry::install_crypto_provider();
        let urls: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
        let eps = GatewayEndpoints::new(&urls, ClientTlsConfig::new()).unwrap();
        let settings = GatewaySettings {
            agent_id: "agent".into(),
            cluster: "east".into(),
            timeout: Duration::from_secs(1),
            zstd_level: 1,
            report: None,
        };
        (
            GatewayDestination::new(settings, eps.clone(), ForwardStats::default()),
            eps,
        )
    }

    fn in_use(d: &mut GatewayDestination) -> String {
        d.refresh();
        d.list.get(d.current).unwrap().url.clone()
    }

    #[tokio::test]
    async fn failover_goes_in_order_over_the_latest_list() {
        let (mut d, eps) = dest(&["https://a:1", "https://b:1"]);
        assert_eq!(in_use(&mut d), "https://a:1");
        d.failover();
        assert_eq!(in_use(&mut d), "https://b:1");
        // The cluster's list still has b: stay on it, fail over from it.
        eps.replace(&["https://b:1", "https://c:1", "https://d:1"]);
        assert_eq!(in_use(&mut d), "https://b:1");
        d.failover();
        assert_eq!(in_use(&mut d), "https://c:1");
        // c left the list while failing: the new list's spread position is
        // already another endpoint, so it is not skipped.
        eps.replace(&["https://x:1", "https://y:1"]);
        d.failover();
        let spread = u64::from(crc32fast::hash(b"agent"));
        let want = ["https://x:1", "https://y:1"][(spread % 2) as usize];
        assert_eq!(in_use(&mut d), want);
    }
}
