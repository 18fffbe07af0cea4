//! Routing notes to the worker of each trace's shard: after the store
//! committed a batch, every gateway turns each span into a [`Note`] and
//! sends it to the worker of the span's shard, locally into the worker's
//! queue or over the peer bus ([`Topic::Stitch`]) in batches. Nothing here
//! waits on ingest: what cannot be queued is dropped and counted.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use control_plane::{
    PeerBus,
    peer::{PeerHandler, Topic},
};
use control_state::NodeId;
use futures::future::BoxFuture;
use model::{Span, TraceId};
use store::{SpanStore, shard::ShardId};
use telemetry::Shutdown;
use tokio::sync::mpsc;

use crate::{StitchConfig, StitchMetrics, trace_state::Note, worker::Worker};

/// Tail-sampling drop reports waiting for the local worker, at most.
pub const DROP_REPORTS: usize = 10_000;

/// A cluster dropped its spans of a trace for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedReport {
    pub trace: TraceId,
    pub shard: ShardId,
    pub cluster: String,
    /// `verdict_timeout`, ...
    pub reason: String,
    pub spans: u64,
}

/// Notes with the shard of their trace.
pub type Batch = Vec<(ShardId, Note)>;

/// Routes notes to the workers and runs this node's worker.
#[derive(Clone)]
pub struct Stitcher {
    plane: Arc<dyn PeerBus>,
    local: mpsc::Sender<Batch>,
    drops: mpsc::Sender<DroppedReport>,
    outboxes: Arc<Mutex<HashMap<NodeId, Outbox>>>,
    config: Arc<StitchConfig>,
    metrics: StitchMetrics,
    /// Owns the worker and the per-peer send loops.
    jobs: Shutdown,
}

impl std::fmt::Debug for Stitcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stitcher").finish_non_exhaustive()
    }
}

impl Stitcher {
    /// Starts this node's worker (a task of `jobs`, until it shuts down)
    /// and registers the peer handler that feeds it.
    pub fn start(
        plane: Arc<dyn PeerBus>,
        store: Arc<dyn SpanStore>,
        config: StitchConfig,
        metrics: StitchMetrics,
        jobs: &Shutdown,
    ) -> Self {
        // Batches, not notes, are queued: the bound is in notes, enforced
        // by the batch size.
        let batches = (config.queue_notes / config.batch_notes.max(1)).max(8);
        let (tx, rx) = mpsc::channel(batches);
        let (drops_tx, drops_rx) = mpsc::channel(DROP_REPORTS);
        let config = Arc::new(config);
        let worker = Worker::new(
            plane.id(),
            Arc::clone(&store),
            Arc::clone(&config),
            metrics.clone(),
        );
        jobs.spawn(worker.run(rx, drops_rx, jobs.token().clone()));
        plane.peer_handlers().register(
            Topic::Stitch,
            Arc::new(Inbox {
                tx: tx.clone(),
                metrics: metrics.clone(),
            }),
        );
        Self {
            plane,
            local: tx,
            drops: drops_tx,
            outboxes: Arc::default(),
            config,
            metrics,
            jobs: jobs.clone(),
        }
    }

    pub fn metrics(&self) -> &StitchMetrics {
        &self.metrics
    }

    /// Records that `cluster` dropped its spans of a trace for good (from a
    /// tail-sampling report reaching this node, the worker of the trace's
    /// shard). Never waits: beyond [`DROP_REPORTS`] queued, the report is
    /// dropped and counted.
    pub fn note_dropped(&self, report: DroppedReport) {
        if self.drops.try_send(report).is_err() {
            self.metrics.drop_notes("drop_reports_full", 1);
        }
    }

    /// Notes the spans of a committed write. Never waits: what cannot be
    /// queued is dropped and counted.
    pub fn observe(&self, spans: &[Span]) {
        if spans.is_empty() {
            return;
        }
        let state = self.plane.state();
        let mut by_worker: HashMap<NodeId, Batch> = HashMap::new();
        let mut no_worker = 0;
        for span in spans {
            let shard = state
                .shard_map
                .as_ref()
                .map_or(0, |m| m.route(span.trace_id, span.start_unix_nano));
            match self.plane.worker_of(shard) {
                Some(w) => by_worker
                    .entry(w)
                    .or_default()
                    .push((shard, Note::of(span))),
                None => no_worker += 1,
            }
        }
        if no_worker > 0 {
            self.metrics.drop_notes("no_worker", no_worker);
        }
        for (worker, batch) in by_worker {
            self.send_to(worker, batch);
        }
    }

    /// Queues a batch for `worker` (in chunks), counting what does not fit.
    fn send_to(&self, worker: NodeId, batch: Batch) {
        for chunk in chunks(batch, self.config.batch_notes) {
            let n = chunk.len();
            let sent = if worker == self.plane.id() {
                self.local.try_send(chunk).is_ok()
            } else {
                self.outbox(worker).try_push(chunk)
            };
            if !sent {
                self.metrics.drop_notes("queue_full", n);
            }
        }
    }

    /// Routes a batch again after its worker did not answer: to the new
    /// worker of each note's shard once the lease moved. Returns the notes
    /// whose worker is still `failed`.
    fn reroute(&self, failed: NodeId, batch: Batch) -> Batch {
        let mut by_worker: HashMap<NodeId, Batch> = HashMap::new();
        let mut stay = Vec::new();
        for (shard, note) in batch {
            match self.plane.worker_of(shard) {
                Some(w) if w != failed => by_worker.entry(w).or_default().push((shard, note)),
                _ => stay.push((shard, note)),
            }
        }
        for (worker, batch) in by_worker {
            self.send_to(worker, batch);
        }
        stay
    }

    /// The queue to a peer worker, started on first use.
    fn outbox(&self, to: NodeId) -> Outbox {
        let mut boxes = match self.outboxes.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        boxes
            .entry(to)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(OUTBOX_BATCHES);
                let queued = Arc::new(AtomicUsize::new(0));
                self.jobs
                    .spawn(send_loop(self.clone(), to, rx, Arc::clone(&queued)));
                Outbox { tx, queued }
            })
            .clone()
    }
}

/// Batches queued for one peer worker, at most.
const OUTBOX_BATCHES: usize = 4_096;
/// Notes queued for one peer worker, at most (each note keeps at most
/// 256 bytes of a name, so a full outbox is tens of MiB). Counted in notes,
/// not batches: while a worker is down (until its lease moves, ~6 s) every
/// Forward batch adds a small batch here, and a bound of 64 batches dropped
/// the notes of the seconds before the lease moved.
const OUTBOX_NOTES: usize = 100_000;

/// The queue to one peer worker and the notes in it.
#[derive(Debug, Clone)]
struct Outbox {
    tx: mpsc::Sender<Batch>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// Queues `batch` unless the outbox holds [`OUTBOX_NOTES`] or
    /// [`OUTBOX_BATCHES`]; never waits.
    fn try_push(&self, batch: Batch) -> bool {
        let n = batch.len();
        if self.queued.fetch_add(n, Ordering::AcqRel).saturating_add(n) > OUTBOX_NOTES {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        if self.tx.try_send(batch).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// `batch` in chunks of at most `size` notes, each allocated to its own
/// length. (`Vec::split_off` leaves the head its whole capacity: chunking a
/// Forward batch of 100,000 notes that way held 50 chunks with room for
/// 2.5 million, and the queue, bounded in notes, held ~1 GiB; the overload
/// test found it with heaptrack.)
fn chunks(mut batch: Batch, size: usize) -> Vec<Batch> {
    let size = size.max(1);
    if batch.len() <= size {
        batch.shrink_to_fit();
        return vec![batch];
    }
    let mut out = Vec::with_capacity(batch.len().div_ceil(size));
    let mut notes = batch.into_iter();
    loop {
        let chunk: Batch = notes.by_ref().take(size).collect();
        if chunk.is_empty() {
            return out;
        }
        out.push(chunk);
    }
}

/// How long notes for an unreachable worker are kept, waiting for its
/// shard's lease to move, before they are dropped.
const REROUTE_FOR: Duration = Duration::from_secs(30);

/// Sends one peer's notes, one batch per message. When the peer does not
/// answer, the batch waits (the other batches for that peer queue behind
/// it, up to the outbox bound) until its shard's lease moves to another
/// node, which then gets it.
async fn send_loop(
    stitcher: Stitcher,
    to: NodeId,
    mut rx: mpsc::Receiver<Batch>,
    queued: Arc<AtomicUsize>,
) {
    let cancel = stitcher.jobs.token().clone();
    loop {
        let mut batch = tokio::select! {
            _ = cancel.cancelled() => return,
            b = rx.recv() => match b { Some(b) => b, None => return },
        };
        queued.fetch_sub(batch.len(), Ordering::AcqRel);
        let since = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(200);
        while let Ok(body) = serde_json::to_vec(&batch) {
            match stitcher
                .plane
                .send_peer(to, Topic::Stitch, &body, Duration::from_secs(5))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(to, error = %e, "stitch notes not delivered; waiting for the lease to move");
                    batch = stitcher.reroute(to, batch);
                    if batch.is_empty() {
                        break;
                    }
                    if since.elapsed() >= REROUTE_FOR {
                        stitcher.metrics.drop_notes("peer_unreachable", batch.len());
                        break;
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Takes peers' notes into the local worker's queue.
struct Inbox {
    tx: mpsc::Sender<Batch>,
    metrics: StitchMetrics,
}

impl PeerHandler for Inbox {
    fn handle(
        &self,
        _from: NodeId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let tx = self.tx.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let batch: Batch =
                serde_json::from_slice(&payload).map_err(|e| format!("bad stitch notes: {e}"))?;
            let n = batch.len();
            tx.try_send(batch).map_err(|_| {
                metrics.drop_notes("queue_full", n);
                "stitching queue full".to_owned()
            })?;
            Ok(Vec::new())
        })
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    #[test]
    fn chunks_hold_only_their_own_notes() {
        let span = store::testsuite::SpanBuilder::new(1, 1, "svc").build();
        let note = Note::of(&span);
        let mut batch: Batch = Vec::with_capacity(10_000);
        for i in 0..10_000u32 {
            batch.push((i, note.clone()));
        }
        let out = chunks(batch, 2_000);
        assert_eq!(out.len(), 5);
        for (k, c) in out.iter().enumerate() {
            assert_eq!(c.len(), 2_000);
            assert!(
                c.capacity() <= 2_000,
                "chunk {k} has room for {}",
                c.capacity()
            );
            assert_eq!(c[0].0, k as u32 * 2_000, "order kept");
        }
        let mut small: Batch = Vec::with_capacity(4_096);
        small.push((0, note));
        let out = chunks(small, 2_000);
        assert!(out[0].capacity() < 4_096);
    }

    /// The outbox of a worker that does not answer holds notes up to its
    /// note bound, however small its batches (it was 64 batches).
    #[test]
    fn an_outbox_is_bounded_in_notes() {
        let span = store::testsuite::SpanBuilder::new(1, 1, "svc").build();
        let note = Note::of(&span);
        let (tx, mut rx) = mpsc::channel(OUTBOX_BATCHES);
        let outbox = Outbox {
            tx,
            queued: Arc::default(),
        };
        for _ in 0..1_000 {
            assert!(
                outbox.try_push(vec![(0, note.clone())]),
                "small batches fit"
            );
        }
        let rest: Batch = (0..OUTBOX_NOTES - 1_000)
            .map(|i| (i as u32, note.clone()))
            .collect();
        assert!(outbox.try_push(rest));
        assert!(
            !outbox.try_push(vec![(0, note.clone())]),
            "over the note bound"
        );
        // A batch taken by the send loop gives its notes back.
        let taken = rx.try_recv().expect("queued");
        outbox.queued.fetch_sub(taken.len(), Ordering::AcqRel);
        assert!(outbox.try_push(vec![(0, note)]));
    }
}
