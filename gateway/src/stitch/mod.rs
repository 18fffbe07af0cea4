//! Stitching traces that cross clusters: trace summaries, service edges
//! (in-cluster and cross-cluster) and clock-skew estimates, kept by the
//! worker of each trace's shard (the holder of the shard's lease, else the
//! Raft leader).
//!
//! Flow: every gateway, after the store committed a batch
//! ([`crate::ingest`]), turns each span into a [`Note`] and routes it to
//! the worker of the span's shard: locally into the worker's queue, or over
//! the Raft port's `Peer` RPC ([`crate::peer::Topic::Stitch`]) in batches.
//! The worker keeps hot per-trace state in a `moka` cache (time-to-idle),
//! pairs parents with children whichever arrives first, and every
//! [`StitchConfig::flush_every`] writes to the store: the summaries of the
//! traces that changed, the per-minute edge aggregates (merged with what is
//! stored), and its clock-offset estimates.
//!
//! Everything here is derived from stored spans: a full queue or an
//! unreachable worker drops notes (counted in
//! `meridian_gateway_stitch_notes_dropped_total{reason}`), never spans. A
//! worker that dies loses the edges of at most one flush interval, and the
//! trace state it held: the new worker starts those traces afresh (their
//! summaries then count only what arrives after the handover, and pairs
//! across the handover are not formed). Summaries shown by the API are
//! completed from the stored trace, so they stay right for what is stored.

pub mod core;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::future::BoxFuture;
use model::{ClusterId, Span, TraceId, skew::SkewEstimator};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use store::{Record, RecordKind, RecordScan, SpanStore, shard::ShardId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::core::{EdgeAgg, Histogram, Note, Summary, TraceState};
use crate::{
    peer::{PeerHandler, Topic},
    raft::{NodeId, node::ControlPlane},
};

/// Tuning of the stitcher.
#[derive(Debug, Clone)]
pub struct StitchConfig {
    /// A trace silent this long has settled; a span after that is late.
    pub settle: Duration,
    /// Trace state not touched for this long leaves memory.
    pub idle: Duration,
    /// Spans held in trace state, at most (the least recently used traces
    /// leave first beyond it).
    pub max_spans: u64,
    /// How often summaries, edges and offsets are written.
    pub flush_every: Duration,
    /// Notes waiting for the local worker, at most; beyond it they are
    /// dropped and counted.
    pub queue_notes: usize,
    /// Notes per peer message.
    pub batch_notes: usize,
    /// The cluster whose clock is the reference for offsets (default: the
    /// first cluster name in byte order).
    pub skew_reference: Option<String>,
    pub skew: model::skew::SkewConfig,
    /// Traces that began up to this long after the worker took their shard
    /// may have been kept by the previous worker (clock skew, delivery
    /// delays): they are resumed from the store.
    pub takeover_margin: Duration,
}

impl Default for StitchConfig {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            max_spans: 500_000,
            flush_every: Duration::from_secs(2),
            queue_notes: 200_000,
            batch_notes: 2_000,
            skew_reference: None,
            skew: model::skew::SkewConfig::default(),
            takeover_margin: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The stitcher's counters.
#[derive(Debug, Clone, Default)]
pub struct StitchMetrics {
    notes: Counter,
    pairs: Counter,
    seeded: Counter,
    dropped: Family<Reason, Counter>,
    flush_errors: Counter,
}

impl StitchMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "meridian_gateway_stitch_notes",
            "Span notes processed by this node's stitching worker",
            m.notes.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_traces_resumed",
            "Traces loaded from the store to resume stitching them (a shard changed hands)",
            m.seeded.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_pairs",
            "Parent-child span pairs formed by stitching",
            m.pairs.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_notes_dropped",
            "Span notes not stitched, by reason (queue_full, peer_unreachable, no_worker)",
            m.dropped.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_flush_errors",
            "Stitching flushes the store refused (retried at the next flush)",
            m.flush_errors.clone(),
        );
        m
    }

    fn drop_notes(&self, reason: &'static str, n: usize) {
        self.dropped
            .get_or_create(&Reason { reason })
            .inc_by(n as u64);
    }

    /// Notes dropped for `reason`.
    pub fn dropped(&self, reason: &'static str) -> u64 {
        self.dropped.get_or_create(&Reason { reason }).get()
    }

    pub fn notes(&self) -> u64 {
        self.notes.get()
    }
}

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
    plane: Arc<ControlPlane>,
    local: mpsc::Sender<Batch>,
    drops: mpsc::Sender<DroppedReport>,
    outboxes: Arc<Mutex<HashMap<NodeId, mpsc::Sender<Batch>>>>,
    config: Arc<StitchConfig>,
    metrics: StitchMetrics,
    jobs: CancellationToken,
}

impl std::fmt::Debug for Stitcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stitcher").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Stitcher {
    /// Starts this node's worker (until `cancel`) and registers the peer
    /// handler that feeds it.
    pub fn start(
        plane: Arc<ControlPlane>,
        store: Arc<dyn SpanStore>,
        config: StitchConfig,
        metrics: StitchMetrics,
        cancel: CancellationToken,
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
        tokio::spawn(worker.run(rx, drops_rx, cancel.clone()));
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
            jobs: cancel,
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
                self.outbox(worker).try_send(chunk).is_ok()
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
    fn outbox(&self, to: NodeId) -> mpsc::Sender<Batch> {
        let mut boxes = match self.outboxes.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        boxes
            .entry(to)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(64);
                tokio::spawn(send_loop(self.clone(), to, rx));
                tx
            })
            .clone()
    }
}

fn chunks(mut batch: Batch, size: usize) -> Vec<Batch> {
    let size = size.max(1);
    if batch.len() <= size {
        return vec![batch];
    }
    let mut out = Vec::new();
    while batch.len() > size {
        let rest = batch.split_off(size);
        out.push(batch);
        batch = rest;
    }
    out.push(batch);
    out
}

/// How long notes for an unreachable worker are kept, waiting for its
/// shard's lease to move, before they are dropped.
const REROUTE_FOR: Duration = Duration::from_secs(30);

/// Sends one peer's notes, one batch per message. When the peer does not
/// answer, the batch waits (the other batches for that peer queue behind
/// it, up to the outbox bound) until its shard's lease moves to another
/// node, which then gets it.
async fn send_loop(stitcher: Stitcher, to: NodeId, mut rx: mpsc::Receiver<Batch>) {
    let cancel = stitcher.jobs.clone();
    loop {
        let mut batch = tokio::select! {
            _ = cancel.cancelled() => return,
            b = rx.recv() => match b { Some(b) => b, None => return },
        };
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

/// A clock-offset estimate as stored (`Offset` record, key
/// `cluster|node`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredOffset {
    pub cluster: String,
    pub reference: String,
    /// `reference time = local time − offset`.
    pub offset_ns: i64,
    pub samples: u64,
    pub node: NodeId,
    pub updated_ms: u64,
}

/// Last time a cluster's span was stitched (kept with the offsets).
type Seen = HashMap<String, u64>;

/// One node's stitching worker.
struct Worker {
    node: NodeId,
    store: Arc<dyn SpanStore>,
    config: Arc<StitchConfig>,
    metrics: StitchMetrics,
    traces: moka::future::Cache<TraceId, Arc<Mutex<TraceState>>>,
    /// Edge deltas not yet written.
    pending: HashMap<String, EdgeAgg>,
    /// What this worker last wrote per edge key (the stored totals).
    written: HashMap<String, EdgeAgg>,
    dirty: BTreeSet<TraceId>,
    /// Traces with spans loaded from the store and not yet noted.
    pending_traces: HashMap<TraceId, ShardId>,
    /// When this worker first got a note for each shard (ms).
    took: HashMap<ShardId, u64>,
    skew: SkewEstimator,
    clusters: Seen,
}

/// Edge keys kept in memory this long after their minute.
const WRITTEN_HORIZON_MIN: u64 = 180;
/// Pending edge keys beyond this (the store refusing writes for long) are
/// dropped.
const MAX_PENDING_EDGES: usize = 100_000;

impl Worker {
    fn new(
        node: NodeId,
        store: Arc<dyn SpanStore>,
        config: Arc<StitchConfig>,
        metrics: StitchMetrics,
    ) -> Self {
        let traces = moka::future::Cache::builder()
            .max_capacity(config.max_spans)
            .weigher(|_: &TraceId, v: &Arc<Mutex<TraceState>>| {
                v.lock().map_or(1, |s| {
                    u32::try_from(s.span_count()).unwrap_or(u32::MAX).max(1)
                })
            })
            .time_to_idle(config.idle)
            .build();
        Self {
            node,
            store,
            skew: SkewEstimator::new(config.skew.clone()),
            config,
            metrics,
            traces,
            pending: HashMap::new(),
            written: HashMap::new(),
            dirty: BTreeSet::new(),
            pending_traces: HashMap::new(),
            took: HashMap::new(),
            clusters: HashMap::new(),
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Batch>,
        mut drops: mpsc::Receiver<DroppedReport>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.config.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.flush().await;
                    return;
                }
                b = rx.recv() => match b {
                    Some(batch) => self.process(batch).await,
                    None => return,
                },
                Some(d) = drops.recv() => self.dropped(d).await,
                _ = tick.tick() => self.flush().await,
            }
        }
    }

    async fn process(&mut self, batch: Batch) {
        let now = now_ms();
        let settle = u64::try_from(self.config.settle.as_millis()).unwrap_or(u64::MAX);
        for (shard, note) in batch {
            self.metrics.notes.inc();
            self.clusters.insert(note.cluster.clone(), now);
            let state = match self.traces.get(&note.trace).await {
                Some(s) => s,
                None => {
                    let s = Arc::new(Mutex::new(self.start_trace(shard, &note, now).await));
                    self.traces.insert(note.trace, Arc::clone(&s)).await;
                    s
                }
            };
            let (pairs, grown, pending) = {
                let Ok(mut s) = state.lock() else { continue };
                let before = s.span_count();
                let pairs = s.observe(&note, now, settle);
                let after = s.span_count();
                // Re-weigh when the trace doubled.
                let grown = after > 1 && after.is_power_of_two() && after != before;
                (pairs, grown, s.has_pending())
            };
            if grown {
                self.traces.insert(note.trace, Arc::clone(&state)).await;
            }
            if pending {
                self.pending_traces.insert(note.trace, shard);
            }
            self.dirty.insert(note.trace);
            self.account(shard, pairs, now);
        }
    }

    /// Adds a drop report to its trace's summary (the trace's state is
    /// loaded from the store when this worker does not hold it).
    async fn dropped(&mut self, d: DroppedReport) {
        let state = match self.traces.get(&d.trace).await {
            Some(s) => s,
            None => {
                let stored = self.store.get_trace(d.trace).await.ok().flatten();
                let summary = stored_summary(self.store.as_ref(), d.trace)
                    .await
                    .ok()
                    .flatten();
                let t = match stored {
                    Some(trace) => {
                        self.pending_traces.insert(d.trace, d.shard);
                        TraceState::seeded(&trace.spans, summary, now_ms())
                    }
                    None => TraceState::default(),
                };
                let s = Arc::new(Mutex::new(t));
                self.traces.insert(d.trace, Arc::clone(&s)).await;
                s
            }
        };
        if let Ok(mut s) = state.lock() {
            let dropped = &mut s.summary.dropped;
            match dropped
                .iter_mut()
                .find(|x| x.cluster == d.cluster && x.reason == d.reason)
            {
                Some(x) => x.spans = x.spans.max(d.spans),
                None => dropped.push(core::Dropped {
                    cluster: d.cluster,
                    reason: d.reason,
                    spans: d.spans,
                }),
            }
        }
        self.dirty.insert(d.trace);
    }

    /// The state of a trace this worker has not seen: empty, or loaded
    /// from the store when another worker may have kept it (the trace
    /// began before this worker took its shard, plus a margin for clock
    /// skew and delivery).
    async fn start_trace(&mut self, shard: ShardId, note: &Note, now: u64) -> TraceState {
        let took = *self.took.entry(shard).or_insert(now);
        let margin = u64::try_from(self.config.takeover_margin.as_millis()).unwrap_or(u64::MAX);
        if note.start / 1_000_000 >= took.saturating_add(margin) {
            return TraceState::default();
        }
        let stored = self.store.get_trace(note.trace).await;
        let summary = stored_summary(self.store.as_ref(), note.trace).await;
        match (stored, summary) {
            (Ok(Some(trace)), Ok(summary)) => {
                self.metrics.seeded.inc();
                TraceState::seeded(&trace.spans, summary, now)
            }
            (Ok(None), _) => TraceState::default(),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "could not load a trace to resume stitching it");
                TraceState::default()
            }
        }
    }

    fn account(&mut self, shard: ShardId, pairs: Vec<core::Pairing>, now: u64) {
        for p in pairs {
            self.metrics.pairs.inc();
            if let Some(pair) = p.skew_pair() {
                self.skew.observe(&pair, now.saturating_mul(1_000_000));
            }
            if p.is_edge() {
                let minute = p.child.start / 60_000_000_000;
                let key = core::edge_key(minute, &p.parent, &p.child, shard);
                if self.pending.len() < MAX_PENDING_EDGES || self.pending.contains_key(&key) {
                    self.pending.entry(key).or_default().add(&p);
                } else {
                    self.metrics.drop_notes("edges_full", 1);
                }
            }
        }
    }

    /// Promotes the loaded spans that settled without their note.
    async fn promote(&mut self, now: u64) {
        let settle = u64::try_from(self.config.settle.as_millis()).unwrap_or(u64::MAX);
        let traces: Vec<(TraceId, ShardId)> =
            self.pending_traces.iter().map(|(t, s)| (*t, *s)).collect();
        for (trace, shard) in traces {
            let Some(state) = self.traces.get(&trace).await else {
                self.pending_traces.remove(&trace);
                continue;
            };
            let (pairs, still) = match state.lock() {
                Ok(mut s) => (s.promote(now, settle), s.has_pending()),
                Err(_) => (Vec::new(), false),
            };
            if !still {
                self.pending_traces.remove(&trace);
            }
            self.account(shard, pairs, now);
        }
    }

    async fn flush(&mut self) {
        let now = now_ms();
        self.promote(now).await;
        // Summaries of the traces that changed.
        let dirty = std::mem::take(&mut self.dirty);
        let mut records = Vec::with_capacity(dirty.len());
        for trace in &dirty {
            let Some(state) = self.traces.get(trace).await else {
                continue;
            };
            let Ok(s) = state.lock() else { continue };
            let Ok(value) = serde_json::to_vec(&s.summary) else {
                continue;
            };
            records.push(Record {
                kind: RecordKind::Summary,
                key: trace.to_hex(),
                time_ms: i64::try_from(s.summary.start_ns / 1_000_000).unwrap_or(i64::MAX),
                value,
                trace: Some(*trace),
            });
        }
        if let Err(store::StoreError::Unsupported(what)) = self.store.put_records(&[]).await {
            // put_records(&[]) is a no-op on backends that keep records.
            tracing::debug!(what, "the store keeps no stitching records");
            self.dirty.clear();
            self.pending.clear();
            return;
        }
        if let Err(e) = self.store.put_records(&records).await {
            tracing::warn!(error = %e, "writing trace summaries failed; retrying at the next flush");
            self.metrics.flush_errors.inc();
            self.dirty.extend(dirty);
        }

        // Edges: merged with what is stored.
        let pending = std::mem::take(&mut self.pending);
        let mut records = Vec::with_capacity(pending.len());
        let mut merged = Vec::with_capacity(pending.len());
        for (key, delta) in &pending {
            let mut total = match self.written.get(key) {
                Some(t) => t.clone(),
                None => match self.stored_edge(key).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading an edge failed; retrying at the next flush");
                        self.metrics.flush_errors.inc();
                        self.pending = pending;
                        return;
                    }
                },
            };
            total.merge(delta);
            let minute = core::parse_edge_key(key).map_or(0, |(m, _, _)| m);
            let Ok(value) = serde_json::to_vec(&total) else {
                continue;
            };
            records.push(Record {
                kind: RecordKind::Edge,
                key: key.clone(),
                time_ms: i64::try_from(minute.saturating_mul(60_000)).unwrap_or(i64::MAX),
                value,
                trace: None,
            });
            merged.push((key.clone(), total));
        }
        match self.store.put_records(&records).await {
            Ok(()) => self.written.extend(merged),
            Err(e) => {
                tracing::warn!(error = %e, "writing service edges failed; retrying at the next flush");
                self.metrics.flush_errors.inc();
                self.pending = pending;
            }
        }
        let oldest = (now / 60_000).saturating_sub(WRITTEN_HORIZON_MIN);
        self.written
            .retain(|k, _| core::parse_edge_key(k).is_some_and(|(m, _, _)| m >= oldest));

        // Clock offsets.
        let reference = self.config.skew_reference.clone().or_else(|| {
            let mut names: Vec<&String> = self.clusters.keys().collect();
            names.sort();
            names.first().map(|s| (*s).clone())
        });
        let Some(reference) = reference.and_then(|r| ClusterId::new(&r).ok()) else {
            return;
        };
        let offsets = self.skew.offsets(&reference, now.saturating_mul(1_000_000));
        let mut records = Vec::new();
        for (cluster, last_seen) in &self.clusters {
            let found = ClusterId::new(cluster)
                .ok()
                .and_then(|c| offsets.get(&c).copied());
            let is_reference = cluster.as_str() == reference.as_str();
            let stored = StoredOffset {
                cluster: cluster.clone(),
                reference: reference.as_str().to_owned(),
                offset_ns: found.map_or(0, |o| o.nanos),
                // The reference is its own clock (no pairs behind it).
                samples: if is_reference {
                    0
                } else {
                    found.map_or(0, |o| u64::try_from(o.samples).unwrap_or(u64::MAX))
                },
                node: self.node,
                updated_ms: *last_seen,
            };
            let Ok(value) = serde_json::to_vec(&stored) else {
                continue;
            };
            records.push(Record {
                kind: RecordKind::Offset,
                key: format!("{cluster}|{}", self.node),
                time_ms: i64::try_from(now).unwrap_or(i64::MAX),
                value,
                trace: None,
            });
        }
        if let Err(e) = self.store.put_records(&records).await {
            tracing::warn!(error = %e, "writing clock offsets failed");
            self.metrics.flush_errors.inc();
        }
    }

    async fn stored_edge(&self, key: &str) -> Result<EdgeAgg, store::StoreError> {
        let found = self
            .store
            .scan_records(&RecordScan {
                kind: RecordKind::Edge,
                prefix: key.to_owned(),
                time: None,
                limit: 1,
                trace: None,
            })
            .await?;
        Ok(found
            .into_iter()
            .find(|r| r.key == key)
            .and_then(|r| serde_json::from_slice(&r.value).ok())
            .unwrap_or_default())
    }
}

/// The summary record of a trace, if one was written.
pub async fn stored_summary(
    store: &dyn SpanStore,
    id: TraceId,
) -> Result<Option<Summary>, store::StoreError> {
    let found = store
        .scan_records(&RecordScan {
            kind: RecordKind::Summary,
            prefix: id.to_hex(),
            time: None,
            limit: 4,
            trace: Some(id),
        })
        .await?;
    Ok(found
        .into_iter()
        .filter(|r| r.key == id.to_hex())
        .filter_map(|r| serde_json::from_slice::<Summary>(&r.value).ok())
        .max_by_key(|s| s.spans))
}

/// Reads the stored clock offsets: per cluster, the estimate with the most
/// samples.
pub async fn offsets(
    store: &dyn SpanStore,
) -> Result<std::collections::BTreeMap<String, StoredOffset>, store::StoreError> {
    let records = store
        .scan_records(&RecordScan {
            kind: RecordKind::Offset,
            prefix: String::new(),
            time: None,
            limit: 10_000,
            trace: None,
        })
        .await?;
    let mut out: std::collections::BTreeMap<String, StoredOffset> = Default::default();
    for r in records {
        let Ok(o) = serde_json::from_slice::<StoredOffset>(&r.value) else {
            continue;
        };
        match out.get_mut(&o.cluster) {
            Some(best) if (best.samples, best.updated_ms) >= (o.samples, o.updated_ms) => {
                best.updated_ms = best.updated_ms.max(o.updated_ms);
            }
            _ => {
                out.insert(o.cluster.clone(), o);
            }
        }
    }
    Ok(out)
}

/// For the stitching benchmark (`meridian-stitch-bench`): runs `batches`
/// through a worker writing to `store`, then flushes once.
pub async fn bench_worker(store: Arc<dyn SpanStore>, config: StitchConfig, batches: Vec<Batch>) {
    // (drop reports are not part of the benchmark)
    let mut w = Worker::new(1, store, Arc::new(config), StitchMetrics::default());
    for b in batches {
        w.process(b).await;
    }
    w.flush().await;
}
