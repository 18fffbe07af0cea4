//! The forwarder: buffer → gateway over mTLS gRPC (`federation.proto`).
//!
//! One batch is in flight at a time. A batch is released from the buffer
//! only when the gateway answers `Forward` (which it does after the store
//! committed). Retryable failures (UNAVAILABLE, RESOURCE_EXHAUSTED,
//! DEADLINE_EXCEEDED, transport errors) are retried with jittered backoff,
//! honouring RetryInfo, and move to the next `--gateway` endpoint.
//! Permanent refusals (INVALID_ARGUMENT, PERMISSION_DENIED) drop the batch,
//! counted and logged, because retrying cannot succeed.

mod backoff;
mod stats;

use std::time::Duration;

use proto::federation::{Compression, ForwardRequest, federation_client::FederationClient};
use telemetry::Shutdown;
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

pub use backoff::Backoff;
pub use stats::ForwardStats;

use crate::buffer::{Buffer, Record};

/// Forwarder settings.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub agent_id: String,
    pub cluster: String,
    /// Uncompressed bytes per batch (at least one record is always sent).
    pub max_batch_bytes: usize,
    pub max_batch_records: usize,
    /// Per-attempt deadline.
    pub timeout: Duration,
    pub backoff: Backoff,
    pub zstd_level: i32,
}

/// Sends buffered records to the gateways until shutdown, then keeps
/// draining until the buffer is empty or `drain_grace` passes.
#[derive(Debug)]
pub struct Forwarder {
    cfg: ForwardConfig,
    buffer: Buffer,
    clients: Vec<(String, FederationClient<Channel>)>,
    stats: ForwardStats,
}

enum Outcome {
    Committed,
    Dropped,
    Retry(Option<Duration>),
}

impl Forwarder {
    pub fn new(
        cfg: ForwardConfig,
        buffer: Buffer,
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
            cfg,
            buffer,
            clients,
            stats,
        }
    }

    pub async fn run(mut self, shutdown: Shutdown, drain_grace: Duration) {
        let mut current = 0usize;
        let mut attempt = 0u32;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            if drain_deadline.is_none() && shutdown.is_triggered() {
                drain_deadline = Some(tokio::time::Instant::now() + drain_grace);
            }
            if let Some(deadline) = drain_deadline
                && (self.buffer.usage().0 == 0 || tokio::time::Instant::now() >= deadline)
            {
                let (records, _, spans) = self.buffer.usage();
                if records > 0 {
                    tracing::warn!(
                        records,
                        spans,
                        "shutdown grace ended with spans still buffered"
                    );
                }
                return;
            }
            let batch = match self
                .buffer
                .peek_after(0, self.cfg.max_batch_bytes, self.cfg.max_batch_records)
                .await
            {
                Ok(b) => b,
                Err(error) => {
                    tracing::error!(%error, "reading the buffer failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                // Everything durable so far is delivered: wait for more.
                let seen = self.buffer.last_durable();
                tokio::select! {
                    _ = self.buffer.wait_after(seen, Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled(), if drain_deadline.is_none() => {}
                }
                continue;
            }
            let outcome = self.send(current, &batch).await;
            let last = batch.last().map(|r| r.seq).unwrap_or(0);
            match outcome {
                Outcome::Committed | Outcome::Dropped => {
                    attempt = 0;
                    let spans: u64 = batch.iter().map(|r| r.spans).sum();
                    if matches!(outcome, Outcome::Committed) {
                        self.stats.acked(spans);
                    } else {
                        self.stats.dropped(spans);
                    }
                    if let Err(error) = self.buffer.ack(last).await {
                        // The gateway has the spans; a replay after a
                        // restart is deduplicated there.
                        tracing::error!(%error, seq = last, "persisting the ack failed");
                    }
                }
                Outcome::Retry(hint) => {
                    attempt = attempt.saturating_add(1);
                    self.stats.retry();
                    if self.clients.len() > 1 {
                        current = (current + 1) % self.clients.len();
                    }
                    let delay = self.cfg.backoff.delay(attempt, hint, rand::random::<f64>());
                    tracing::debug!(
                        retry_in_ms = delay.as_millis() as u64,
                        attempt,
                        "forward will retry"
                    );
                    if drain_deadline.is_some() {
                        tokio::time::sleep(delay).await;
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.cancelled() => {}
                        }
                    }
                }
            }
        }
    }

    async fn send(&mut self, idx: usize, batch: &[Record]) -> Outcome {
        let Some((name, client)) = self.clients.get_mut(idx) else {
            return Outcome::Retry(None);
        };
        let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload.as_ref()).collect();
        let (payload, uncompressed) = match proto::payload::encode(&payloads, self.cfg.zstd_level) {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(%error, "compressing a batch failed");
                return Outcome::Retry(None);
            }
        };
        let spans: u64 = batch.iter().map(|r| r.spans).sum();
        let first = batch.first().map(|r| r.seq).unwrap_or(0);
        let last = batch.last().map(|r| r.seq).unwrap_or(0);
        let mut req = tonic::Request::new(ForwardRequest {
            agent_id: self.cfg.agent_id.clone(),
            cluster: self.cfg.cluster.clone(),
            first_sequence: first,
            last_sequence: last,
            compression: Compression::Zstd as i32,
            payload,
            uncompressed_size: uncompressed,
            span_count: spans,
        });
        req.set_timeout(self.cfg.timeout);
        match client.forward(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                self.stats.gateway_up(true);
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
            Err(status) => {
                let hint = status.get_details_retry_info().and_then(|r| r.retry_delay);
                match status.code() {
                    Code::InvalidArgument
                    | Code::PermissionDenied
                    | Code::Unauthenticated
                    | Code::Unimplemented => {
                        self.stats.gateway_up(true);
                        tracing::error!(
                            gateway = %name,
                            code = ?status.code(),
                            message = %status.message(),
                            spans,
                            "gateway refused a batch permanently; dropping it"
                        );
                        Outcome::Dropped
                    }
                    code => {
                        if matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled) {
                            self.stats.gateway_up(false);
                        }
                        tracing::warn!(
                            gateway = %name,
                            code = ?code,
                            message = %status.message(),
                            spans,
                            "forward failed"
                        );
                        Outcome::Retry(hint)
                    }
                }
            }
        }
    }
}
