//! Forwarders: buffer → destination, in order, pipelined, released only
//! after the destination acknowledged.
//!
//! Destinations ([`Destination`]): the gateway over mTLS gRPC
//! (`federation.proto`, answered after the store committed) and, with
//! `--export-otlp`, any OTLP gRPC endpoint. Each destination has its own
//! [`Forwarder`] and cursor; [`AckJoin`] releases a record from the buffer
//! once *every* destination acknowledged it.
//!
//! Pipelining: up to `max_inflight` batches are in flight; acks are applied
//! in sequence order, so a later batch's success never releases an earlier
//! one. On a retryable failure every in-flight batch is abandoned and sending
//! restarts after the last acknowledged record (the gateway writes are
//! idempotent on (trace id, span id), so a batch that did land is not
//! duplicated). Retries use jittered exponential backoff honouring
//! RetryInfo, and move to the next endpoint (of [`GatewayEndpoints`], which
//! the control client replaces with the gateway cluster's members). Permanent refusals
//! (INVALID_ARGUMENT, PERMISSION_DENIED, …) release the batch from the
//! buffer, because retrying cannot succeed: it is counted, logged and kept
//! aside in the bounded [`dead_letter`] directory.
//!
//! A batch holds up to 512 records from many apps, so one bad span must not
//! cost it: the receivers already refuse foreign cluster claims per resource
//! (partial success), and the gateway refuses per resource too, reporting
//! counts in its reply (logged and counted here as `rejected`).

mod backoff;
pub mod dead_letter;
pub mod endpoints;
mod gateway;
mod otlp;
mod stats;

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, future::BoxFuture, stream::FuturesOrdered};
use telemetry::Shutdown;

pub use backoff::Backoff;
pub use dead_letter::{DEAD_LETTER_MAX_BYTES, DeadLetter, DeadLetterStats};
pub use endpoints::GatewayEndpoints;
pub use gateway::{BufferReport, GatewayDestination, GatewaySettings};
pub use otlp::OtlpDestination;
pub use stats::ForwardStats;

use crate::buffer::{Buffer, Record};

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination acknowledged it (the gateway: committed to the store).
    Committed,
    /// Refused permanently; released, counted as dropped and kept in the
    /// dead-letter directory.
    Dropped,
    /// Try again later, optionally after the destination's hint.
    Retry(Option<Duration>),
}

/// Somewhere batches go.
pub trait Destination: Send + 'static {
    /// Starts sending `batch`; the future owns what it needs.
    fn send(&mut self, batch: Arc<[Record]>) -> BoxFuture<'static, Outcome>;
    /// Moves to the next endpoint after a failure.
    fn failover(&mut self);
}

/// What a failed send means, for every destination: a permanent refusal
/// drops the batch (retrying cannot succeed, it is counted and logged);
/// anything else is retried, after the server's RetryInfo hint if any.
pub(crate) fn on_error(
    status: &tonic::Status,
    endpoint: &str,
    spans: u64,
    stats: &ForwardStats,
) -> Outcome {
    use tonic::Code;
    use tonic_types::StatusExt;
    match status.code() {
        Code::InvalidArgument
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented => {
            stats.gateway_up(true);
            tracing::error!(
                endpoint,
                code = ?status.code(),
                message = %status.message(),
                spans,
                "destination refused a batch permanently; releasing it to the dead-letter directory"
            );
            Outcome::Dropped
        }
        code => {
            if matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled) {
                stats.gateway_up(false);
            }
            tracing::warn!(
                endpoint,
                code = ?code,
                message = %status.message(),
                spans,
                "forward failed"
            );
            Outcome::Retry(status.get_details_retry_info().and_then(|r| r.retry_delay))
        }
    }
}

/// Batching and pipelining settings.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Uncompressed bytes per batch (at least one record is always sent).
    pub max_batch_bytes: usize,
    pub max_batch_records: usize,
    /// Batches in flight at once.
    pub max_inflight: usize,
    pub backoff: Backoff,
}

/// Releases buffer records once every destination acknowledged them.
#[derive(Debug, Clone)]
pub struct AckJoin {
    buffer: Buffer,
    cursors: Arc<tokio::sync::Mutex<Vec<u64>>>,
}

impl AckJoin {
    pub fn new(buffer: Buffer, destinations: usize) -> Self {
        Self {
            buffer,
            cursors: Arc::new(tokio::sync::Mutex::new(vec![0; destinations])),
        }
    }

    /// Destination `slot` acknowledged everything up to `seq`.
    async fn ack(&self, slot: usize, seq: u64) {
        // Held across the buffer ack so releases are applied in order.
        let mut cursors = self.cursors.lock().await;
        if let Some(c) = cursors.get_mut(slot) {
            *c = (*c).max(seq);
        }
        let min = cursors.iter().copied().min().unwrap_or(0);
        if min == 0 {
            return;
        }
        if let Err(error) = self.buffer.ack(min).await {
            // The destination has the spans; a replay after a restart is
            // deduplicated by the gateway.
            tracing::error!(%error, seq = min, "persisting the ack failed");
        }
    }
}

/// Sends buffered records to one destination until shutdown, then keeps
/// draining until everything durable is acknowledged or `drain_grace`
/// passes.
pub struct Forwarder<D> {
    name: &'static str,
    cfg: ForwardConfig,
    buffer: Buffer,
    dest: D,
    acks: AckJoin,
    slot: usize,
    stats: ForwardStats,
    /// Where permanently refused batches go (`None`: they are only
    /// counted, as for RED windows).
    dead_letter: Option<DeadLetter>,
}

impl<D> std::fmt::Debug for Forwarder<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

type InFlight = FuturesOrdered<BoxFuture<'static, (u64, u64, Arc<[Record]>, Outcome)>>;

impl<D: Destination> Forwarder<D> {
    pub fn new(
        name: &'static str,
        cfg: ForwardConfig,
        buffer: Buffer,
        dest: D,
        acks: AckJoin,
        slot: usize,
        stats: ForwardStats,
    ) -> Self {
        Self {
            name,
            cfg,
            buffer,
            dest,
            acks,
            slot,
            stats,
            dead_letter: None,
        }
    }

    /// Keeps permanently refused batches in `dl`.
    pub fn with_dead_letter(mut self, dl: DeadLetter) -> Self {
        self.dead_letter = Some(dl);
        self
    }

    /// Keeps a refused batch aside; a failure is logged (the batch is
    /// released either way: retrying it cannot succeed).
    async fn keep_refused(&self, batch: Arc<[Record]>, spans: u64) {
        let Some(dl) = &self.dead_letter else {
            return;
        };
        let first = batch.first().map_or(0, |r| r.seq);
        let last = batch.last().map_or(0, |r| r.seq);
        match dl.keep(self.name, batch).await {
            Ok(dead_letter::Kept::Stored { path, evicted }) => tracing::warn!(
                destination = self.name,
                first,
                last,
                spans,
                path = %path.display(),
                evicted,
                "refused batch kept in the dead-letter directory"
            ),
            Ok(dead_letter::Kept::TooLarge { bytes }) => tracing::error!(
                destination = self.name,
                first,
                last,
                spans,
                bytes,
                "refused batch is larger than the dead-letter cap; not kept"
            ),
            Err(error) => tracing::error!(
                %error,
                destination = self.name,
                first,
                last,
                spans,
                "writing a refused batch to the dead-letter directory failed"
            ),
        }
    }

    pub async fn run(mut self, shutdown: Shutdown, drain_grace: Duration) {
        let mut attempt = 0u32;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        // Everything up to `acked` is acknowledged by this destination;
        // everything up to `sent` is acknowledged or in flight.
        let mut acked = 0u64;
        let mut sent = 0u64;
        let mut inflight: InFlight = FuturesOrdered::new();
        loop {
            if drain_deadline.is_none() && shutdown.is_triggered() {
                drain_deadline = Some(tokio::time::Instant::now() + drain_grace);
            }
            if let Some(deadline) = drain_deadline {
                let done = inflight.is_empty() && self.caught_up(acked).await;
                if done || tokio::time::Instant::now() >= deadline {
                    if !done {
                        let (records, _, spans) = self.buffer.usage();
                        tracing::warn!(
                            destination = self.name,
                            records,
                            spans,
                            "shutdown grace ended with spans not yet acknowledged"
                        );
                    }
                    return;
                }
            }
            // Fill the pipeline.
            while inflight.len() < self.cfg.max_inflight.max(1) {
                let batch = match self
                    .buffer
                    .peek_after(sent, self.cfg.max_batch_bytes, self.cfg.max_batch_records)
                    .await
                {
                    Ok(b) => b,
                    Err(error) => {
                        tracing::error!(%error, "reading the buffer failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                };
                let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                    break;
                };
                debug_assert!(first.seq > sent);
                let last = last.seq;
                sent = last;
                let spans: u64 = batch.iter().map(|r| r.spans).sum();
                self.stats.forwarded(spans);
                let batch: Arc<[Record]> = Arc::from(batch);
                let fut = self.dest.send(Arc::clone(&batch));
                inflight.push_back(Box::pin(async move { (last, spans, batch, fut.await) }));
            }
            if inflight.is_empty() {
                // Everything durable so far is delivered: wait for more.
                let seen = self.buffer.last_durable();
                tokio::select! {
                    _ = self.buffer.wait_after(seen.max(sent), Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled(), if drain_deadline.is_none() => {}
                }
                continue;
            }
            let Some((last, spans, batch, outcome)) = inflight.next().await else {
                continue;
            };
            match outcome {
                Outcome::Committed | Outcome::Dropped => {
                    attempt = 0;
                    if outcome == Outcome::Committed {
                        self.stats.acked(spans);
                    } else {
                        self.stats.dropped(spans);
                        // Before the release: a crash in between sends it
                        // (and keeps it) again, never loses it.
                        self.keep_refused(batch, spans).await;
                    }
                    acked = last;
                    self.acks.ack(self.slot, last).await;
                }
                Outcome::Retry(hint) => {
                    // Abandon the rest of the pipeline; resend from the
                    // first unacknowledged record.
                    inflight = FuturesOrdered::new();
                    sent = acked;
                    attempt = attempt.saturating_add(1);
                    self.stats.retry();
                    self.dest.failover();
                    let delay = self.cfg.backoff.delay(attempt, hint, rand::random::<f64>());
                    tracing::debug!(
                        destination = self.name,
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

    /// True when this destination acknowledged every durable record.
    async fn caught_up(&self, acked: u64) -> bool {
        match self.buffer.peek_after(acked, 1, 1).await {
            Ok(b) => b.is_empty(),
            Err(_) => false,
        }
    }
}
