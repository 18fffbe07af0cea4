//! Cross-cluster tail sampling, gateway side ("spans stay, decisions
//! travel"). The protocol is in `federation.proto` (`Decide`).
//!
//! ```text
//! agent ──Decide stream (DigestBatch)──► any gateway: the relay
//!   │                                      │ checks, remembers per trace, groups by
//!   │                                      │ worker_of(shard of the trace)
//!   │                                      ▼ Peer RPC, topic Digests (local when itself)
//!   │                                   worker (the shard's lease holder, else the leader)
//!   │                                      │ Combiner: keep if any cluster kept;
//!   │                                      │ else the "*" tail policy over the combined
//!   │                                      │ digests when the window ends; else drop
//!   │                                      ▼ answer (known verdicts) / topic Verdicts
//!   ◄──────── VerdictBatch ────────────── relay: every stream that reported the trace
//! ```
//!
//! [`relay`] and [`worker`] say what is bounded and what happens when full;
//! [`combiner`] is the pure decision.

pub mod combiner;
pub mod metrics;
pub mod relay;
pub mod wire;
pub mod worker;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use proto::federation::{DigestBatch, PeerDigest, VerdictBatch};
use store::shard::ShardId;
use telemetry::Shutdown;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use combiner::{Combiner, CombinerConfig};
use control_plane::{PeerBus, peer::Topic};
use control_state::ControlState;
use metrics::TailMetrics;
use relay::{Relay, VerdictsHandler};
use worker::{DigestsHandler, Worker};

/// Tail decision settings of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailSettings {
    /// How long after a trace's first digest the worker decides a trace no
    /// cluster kept (`--tail-decision-window-ms`).
    pub window: Duration,
    /// Traces open in a worker's windows at most.
    pub max_open: usize,
    /// Traces a relaying node tracks at most.
    pub max_pending: usize,
    /// Decided verdicts a worker remembers for late digests, and how long.
    pub decided_max: u64,
    pub decided_ttl: Duration,
}

/// The default of `--tail-decision-window-ms`.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(1_000);

impl Default for TailSettings {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            max_open: 200_000,
            max_pending: 200_000,
            decided_max: 1_000_000,
            decided_ttl: Duration::from_secs(300),
        }
    }
}

/// The shard a digest's trace belongs to (shard 0 without a shard map).
pub fn shard_of(state: &ControlState, d: &PeerDigest) -> ShardId {
    match wire::trace_of(d) {
        Some(tid) => shard_of_trace(state, tid, wire::start_of(d)),
        None => 0,
    }
}

/// The shard of trace `tid` that started at `start` (shard 0 without a
/// shard map).
pub fn shard_of_trace(state: &ControlState, tid: model::TraceId, start: u64) -> ShardId {
    match &state.shard_map {
        Some(map) => map.route(tid, start),
        None => 0,
    }
}

pub type DecideStream = Pin<Box<dyn Stream<Item = Result<VerdictBatch, Status>> + Send>>;

/// This node's part in tail decisions: relay for its agents, worker for
/// its shards.
#[derive(Debug, Clone)]
pub struct TailDecisions {
    relay: Arc<Relay>,
    metrics: TailMetrics,
}

impl TailDecisions {
    /// Registers the Peer handlers and starts the worker's window ticker,
    /// its outbox and the relay's retries on `jobs`.
    pub fn start(
        plane: Arc<dyn PeerBus>,
        settings: &TailSettings,
        metrics: TailMetrics,
        stitch: Option<crate::Stitcher>,
        jobs: &Shutdown,
    ) -> Self {
        let combiner = Combiner::new(
            CombinerConfig {
                window: settings.window,
                max_open: settings.max_open,
                decided_max: settings.decided_max,
                decided_ttl: settings.decided_ttl,
            },
            std::time::Instant::now(),
        );
        let (worker, outbox) = Worker::new(Arc::clone(&plane), combiner, metrics.clone(), stitch);
        let relay = Relay::new(
            Arc::clone(&plane),
            metrics.clone(),
            settings.window,
            settings.max_pending,
        );
        let handlers = plane.peer_handlers();
        handlers.register(
            Topic::Digests,
            Arc::new(DigestsHandler(Arc::clone(&worker))),
        );
        handlers.register(
            Topic::Verdicts,
            Arc::new(VerdictsHandler(Arc::clone(&relay))),
        );
        jobs.spawn(Arc::clone(&worker).run(jobs.token().clone()));
        jobs.spawn(Worker::send_outbox(
            Arc::clone(&plane),
            outbox,
            metrics.clone(),
            jobs.token().clone(),
        ));
        jobs.spawn(Arc::clone(&relay).run_retries(jobs.token().clone()));
        Self { relay, metrics }
    }

    /// Traces this node relayed that wait for a verdict (or linger).
    pub fn pending(&self) -> usize {
        self.relay.pending()
    }

    /// Serves one agent's `Decide` stream (its identity already checked):
    /// each batch is checked against `cluster` and relayed; verdicts come
    /// back on the returned stream. It ends when the agent's side ends, on
    /// a protocol error (INVALID_ARGUMENT / PERMISSION_DENIED), or at
    /// `shutdown` (UNAVAILABLE).
    pub fn stream(
        &self,
        cluster: model::ClusterId,
        incoming: Streaming<DigestBatch>,
        check: impl Fn(&DigestBatch) -> Result<(), Status> + Send + 'static,
        shutdown: CancellationToken,
    ) -> DecideStream {
        let (tx, rx) = mpsc::channel(relay::STREAM_QUEUE);
        let cluster: Arc<str> = Arc::from(cluster.as_str());
        let id = self.relay.register(Arc::clone(&cluster), tx);
        let guard = Unregister {
            relay: Arc::clone(&self.relay),
            id,
        };
        let metrics = self.metrics.clone();
        // Reading the agent's batches drives the relaying; it yields only
        // an error that ends the stream.
        let reader = futures::stream::unfold(
            Some((incoming, guard, check, metrics, cluster)),
            |st| async move {
                let (mut incoming, guard, check, metrics, cluster) = st?;
                loop {
                    let batch = match incoming.message().await {
                        Ok(Some(b)) => b,
                        Ok(None) | Err(_) => return None,
                    };
                    if let Err(status) = check(&batch) {
                        return Some((Some(Err(status)), None));
                    }
                    metrics.bytes(prost::Message::encoded_len(&batch));
                    let n = batch.digests.len();
                    match wire::relayable(batch, &cluster) {
                        Ok(digests) => {
                            if let Err(over) = guard.relay.accept(guard.id, digests).await {
                                return Some((Some(Err(over.status())), None));
                            }
                        }
                        Err(e) => {
                            metrics.digests("invalid", n);
                            return Some((
                                Some(Err(Status::invalid_argument(e.to_string()))),
                                None,
                            ));
                        }
                    }
                }
            },
        )
        .filter_map(futures::future::ready);
        // Ends once the reader ended and the queued verdicts went out.
        let merged = futures::stream::select(reader, ReceiverStream::new(rx));
        let stopping = shutdown.clone();
        let last = futures::stream::once(async move {
            stopping
                .is_cancelled()
                .then(|| Err(Status::unavailable("the gateway is shutting down")))
        })
        .filter_map(futures::future::ready);
        Box::pin(merged.take_until(shutdown.cancelled_owned()).chain(last))
    }
}

/// Unregisters a stream from the relay when its reader ends.
struct Unregister {
    relay: Arc<Relay>,
    id: u64,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.relay.unregister(self.id);
    }
}
