//! One node's stitching worker: hot per-trace state in a `moka` cache
//! (time-to-idle, weighed in spans), parents paired with children
//! whichever arrives first, and every [`StitchConfig::flush_every`] a write
//! of the summaries that changed, the per-minute edge aggregates (merged
//! with what is stored) and the clock-offset estimates. A worker taking a
//! shard over resumes recent traces from the store.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use control_state::NodeId;
use model::{ClusterId, TraceId, skew::SkewEstimator};
use store::{Record, RecordKind, RecordScan, SpanStore, shard::ShardId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[cfg(test)]
mod tests;

use crate::{
    StitchConfig, StitchMetrics,
    records::{StoredOffset, stored_summary},
    route::{Batch, DroppedReport},
    trace_state::{self, EdgeAgg, Note, TraceState},
};

/// Last time a cluster's span was stitched (kept with the offsets).
type Seen = HashMap<String, u64>;

/// One node's stitching worker.
pub(crate) struct Worker {
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
    pub(crate) fn new(
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

    /// Wall time in ms, by the configured clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.config.clock.unix_ms()).unwrap_or(0)
    }

    pub(crate) async fn run(
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

    pub(crate) async fn process(&mut self, batch: Batch) {
        let now = self.now_ms();
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
    pub(crate) async fn dropped(&mut self, d: DroppedReport) {
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
                        TraceState::seeded(&trace.spans, summary, self.now_ms())
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
                None => dropped.push(trace_state::Dropped {
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

    fn account(&mut self, shard: ShardId, pairs: Vec<trace_state::Pairing>, now: u64) {
        for p in pairs {
            self.metrics.pairs.inc();
            if let Some(pair) = p.skew_pair() {
                self.skew.observe(&pair, now.saturating_mul(1_000_000));
            }
            if p.is_edge() {
                let minute = p.child.start / 60_000_000_000;
                let key = trace_state::edge_key(minute, &p.parent, &p.child, shard);
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

    pub(crate) async fn flush(&mut self) {
        let now = self.now_ms();
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
            let minute = trace_state::parse_edge_key(key).map_or(0, |(m, _, _)| m);
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
            .retain(|k, _| trace_state::parse_edge_key(k).is_some_and(|(m, _, _)| m >= oldest));

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
