//! The relaying side: the agents' `Decide` streams on this node, the
//! digests they sent that wait for a verdict, and their delivery.
//!
//! - A digest batch is checked, remembered per trace (which streams
//!   reported it, one digest per cluster) and relayed to the worker of each
//!   trace's shard, grouped by worker; the answer carries the verdicts the
//!   worker already knows.
//! - Verdicts (in answers, or pushed by a worker on topic `Verdicts`) go
//!   down every stream that reported the trace; each stream has a bounded
//!   queue (full: the verdict is dropped and counted; the agent's timeout
//!   applies).
//! - Retries: a relay that failed (worker unreachable, not the worker any
//!   more, no worker known) is tried again every [`RETRY_TICK`] against
//!   `worker_of` as it is then; one that reached its worker but has no
//!   verdict after the window plus [`VERDICT_GRACE`] is sent again (the
//!   worker answers from its cache). Traces a cluster kept locally linger
//!   for [`KEEP_LINGER`] after their verdict and are sent again to a new
//!   worker when the shard's worker changes, so the keep survives a worker
//!   that died before telling the other clusters.
//! - At most `max_pending` traces wait, and each cluster with a stream on
//!   this node holds at most an equal share of them (one cluster cannot
//!   starve the others). A batch that brings traces beyond its cluster's
//!   share relays what fits; the excess is counted as `over_share` and the
//!   stream ends with RESOURCE_EXHAUSTED and a RetryInfo (the agent applies
//!   local verdicts to what it was not answered, and reconnects).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use model::TraceId;
use prost::Message;
use proto::federation::{PeerDigests, PeerVerdicts, TraceVerdict, VerdictBatch};
use store::shard::ShardId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::{metrics::TailMetrics, shard_of_trace, wire::Held, worker::PEER_TIMEOUT};
use control_plane::{
    PeerBus,
    peer::{PeerHandler, Topic},
};
use control_state::NodeId;

/// How often failed relays are retried.
pub const RETRY_TICK: Duration = Duration::from_millis(250);
/// Beyond the window, how long a relayed trace waits for its verdict
/// before it is asked again.
pub const VERDICT_GRACE: Duration = Duration::from_millis(500);
/// How long a locally kept trace is remembered after its verdict.
pub const KEEP_LINGER: Duration = Duration::from_secs(15);
/// Nothing waits longer than this (agents gave up long before).
pub const PENDING_TTL: Duration = Duration::from_secs(60);
/// Verdict batches queued per agent stream.
pub const STREAM_QUEUE: usize = 64;

/// How long an agent refused for its cluster's share waits to reconnect.
pub const OVER_SHARE_RETRY: Duration = Duration::from_secs(1);

pub type VerdictSender = mpsc::Sender<Result<VerdictBatch, Status>>;

#[cfg(test)]
mod tests;

#[derive(Debug)]
struct Relayed {
    shard: ShardId,
    /// The cluster whose digest brought it (its share holds it).
    owner: Arc<str>,
    streams: Vec<u64>,
    /// One per cluster: the latest.
    digests: Vec<Held>,
    first: Instant,
    next_try: Instant,
    /// The worker it reached last (`None`: not reached yet).
    sent_to: Option<NodeId>,
    answered: bool,
}

impl Relayed {
    fn keeps(&self) -> bool {
        self.digests.iter().any(Held::is_keep)
    }
}

/// The waiting traces, and how many each cluster holds.
#[derive(Debug, Default)]
struct Pending {
    traces: HashMap<TraceId, Relayed>,
    held: HashMap<Arc<str>, usize>,
}

impl Pending {
    fn remove(&mut self, id: &TraceId) {
        if let Some(r) = self.traces.remove(id) {
            release(&mut self.held, &r.owner);
        }
    }
}

fn release(held: &mut HashMap<Arc<str>, usize>, owner: &Arc<str>) {
    if let Some(n) = held.get_mut(owner) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            held.remove(owner);
        }
    }
}

/// The agents' streams on this node, and how many each cluster has.
#[derive(Debug, Default)]
struct Streams {
    by_id: HashMap<u64, (Arc<str>, VerdictSender)>,
    clusters: HashMap<Arc<str>, usize>,
}

/// Traces of a batch refused because its cluster held its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cluster holds {held} of this gateway's {max} pending tail decisions, its fair share of {share}; {refused} traces were not relayed"
)]
pub struct OverShare {
    pub refused: usize,
    pub held: usize,
    pub share: usize,
    pub max: usize,
}

impl OverShare {
    /// RESOURCE_EXHAUSTED, with a RetryInfo.
    pub fn status(&self) -> Status {
        use tonic_types::{ErrorDetails, StatusExt};
        Status::with_error_details(
            tonic::Code::ResourceExhausted,
            self.to_string(),
            ErrorDetails::with_retry_info(Some(OVER_SHARE_RETRY)),
        )
    }
}

pub struct Relay {
    plane: Arc<dyn PeerBus>,
    metrics: TailMetrics,
    window: Duration,
    max_pending: usize,
    next_stream: AtomicU64,
    streams: Mutex<Streams>,
    pending: Mutex<Pending>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections do not await and leave the maps consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    pub fn new(
        plane: Arc<dyn PeerBus>,
        metrics: TailMetrics,
        window: Duration,
        max_pending: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            plane,
            metrics,
            window,
            max_pending,
            next_stream: AtomicU64::new(1),
            streams: Mutex::default(),
            pending: Mutex::default(),
        })
    }

    /// Registers the stream of an agent of `cluster`.
    pub fn register(&self, cluster: Arc<str>, tx: VerdictSender) -> u64 {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let mut streams = lock(&self.streams);
        *streams.clusters.entry(Arc::clone(&cluster)).or_default() += 1;
        streams.by_id.insert(id, (cluster, tx));
        id
    }

    pub fn unregister(&self, id: u64) {
        let mut streams = lock(&self.streams);
        if let Some((cluster, _)) = streams.by_id.remove(&id) {
            release(&mut streams.clusters, &cluster);
        }
    }

    /// Traces waiting for a verdict (or lingering) on this node.
    pub fn pending(&self) -> usize {
        lock(&self.pending).traces.len()
    }

    /// Traces a cluster may hold: an equal share among the clusters with
    /// a stream here (at least one trace).
    fn share(&self) -> usize {
        let clusters = lock(&self.streams).clusters.len().max(1);
        (self.max_pending / clusters).max(1)
    }

    /// Remembers and relays the checked digests of stream `stream`. New
    /// traces beyond the cluster's share are not relayed ([`OverShare`]).
    pub async fn accept(&self, stream: u64, digests: Vec<Held>) -> Result<(), OverShare> {
        let now = Instant::now();
        let state = self.plane.state();
        let share = self.share();
        let mut send = Vec::with_capacity(digests.len());
        let mut refused = 0;
        let mut held_by = 0;
        {
            let mut guard = lock(&self.pending);
            let Pending { traces, held } = &mut *guard;
            for d in digests {
                let tid = d.trace_id;
                // A drop report waits for nothing: relayed once, not
                // remembered (it only feeds the trace's summary).
                if d.is_dropped_report() {
                    send.push(d);
                    continue;
                }
                if !traces.contains_key(&tid) {
                    let mine = held.get(&d.cluster).copied().unwrap_or(0);
                    if mine >= share || traces.len() >= self.max_pending {
                        refused += 1;
                        held_by = mine;
                        continue;
                    }
                    *held.entry(Arc::clone(&d.cluster)).or_default() += 1;
                }
                let r = traces.entry(tid).or_insert_with(|| Relayed {
                    shard: shard_of_trace(&state, tid, d.start()),
                    owner: Arc::clone(&d.cluster),
                    streams: Vec::new(),
                    digests: Vec::new(),
                    first: now,
                    next_try: now,
                    sent_to: None,
                    answered: false,
                });
                if !r.streams.contains(&stream) {
                    r.streams.push(stream);
                }
                match r.digests.iter_mut().find(|x| x.cluster == d.cluster) {
                    Some(x) => *x = d.clone(),
                    None => r.digests.push(d.clone()),
                }
                // A new report of an answered trace asks again (the worker
                // answers from its cache).
                r.answered = false;
                send.push(d);
            }
        }
        if refused > 0 {
            self.metrics.digests("over_share", refused);
        }
        self.metrics.digests("relayed", send.len());
        self.send(send).await;
        match refused {
            0 => Ok(()),
            refused => Err(OverShare {
                refused,
                held: held_by,
                share,
                max: self.max_pending,
            }),
        }
    }

    /// Relays `digests` to the workers of their shards.
    async fn send(&self, digests: Vec<Held>) {
        if digests.is_empty() {
            return;
        }
        let state = self.plane.state();
        let mut by_worker: BTreeMap<NodeId, Vec<Held>> = BTreeMap::new();
        let mut unroutable = 0;
        for d in digests {
            match self
                .plane
                .worker_of(shard_of_trace(&state, d.trace_id, d.start()))
            {
                Some(w) => by_worker.entry(w).or_default().push(d),
                None => unroutable += 1,
            }
        }
        if unroutable > 0 {
            self.metrics.digests("unroutable", unroutable);
        }
        for (worker, digests) in by_worker {
            let ids: Vec<TraceId> = digests.iter().map(|d| d.trace_id).collect();
            let body = PeerDigests {
                digests: digests.iter().map(Held::to_wire).collect(),
            }
            .encode_to_vec();
            let answer = self
                .plane
                .send_peer(worker, Topic::Digests, &body, PEER_TIMEOUT)
                .await;
            let now = Instant::now();
            let reached = answer.is_ok();
            {
                let mut pending = lock(&self.pending);
                for id in &ids {
                    if let Some(r) = pending.traces.get_mut(id) {
                        if reached {
                            r.sent_to = Some(worker);
                            r.next_try = now + self.window + VERDICT_GRACE;
                        } else {
                            r.next_try = now + RETRY_TICK;
                        }
                    }
                }
            }
            match answer {
                Ok(bytes) => match PeerVerdicts::decode(bytes.as_slice()) {
                    Ok(v) => self.deliver(v.verdicts),
                    Err(error) => tracing::warn!(worker, %error, "undecodable verdicts"),
                },
                Err(error) => {
                    self.metrics.digests("refused", ids.len());
                    tracing::debug!(worker, %error, traces = ids.len(), "tail digests not taken; retrying");
                }
            }
        }
    }

    /// Pushes verdicts down the streams that reported their traces.
    pub fn deliver(&self, verdicts: Vec<TraceVerdict>) {
        let now = Instant::now();
        let mut by_stream: BTreeMap<u64, Vec<TraceVerdict>> = BTreeMap::new();
        {
            let mut pending = lock(&self.pending);
            for v in verdicts {
                let Ok(tid) = TraceId::from_bytes(&v.trace_id) else {
                    continue;
                };
                let Some(r) = pending.traces.get_mut(&tid) else {
                    continue;
                };
                if r.answered {
                    continue;
                }
                for s in &r.streams {
                    by_stream.entry(*s).or_default().push(v.clone());
                }
                if r.keeps() && now < r.first + KEEP_LINGER {
                    r.answered = true;
                    r.streams.clear();
                } else {
                    pending.remove(&tid);
                }
            }
        }
        let streams = lock(&self.streams);
        for (id, verdicts) in by_stream {
            let n = verdicts.len();
            match streams.by_id.get(&id) {
                Some((_, tx)) => {
                    if tx.try_send(Ok(VerdictBatch { verdicts })).is_err() {
                        self.metrics.undelivered("stream_full", n);
                    }
                }
                None => self.metrics.undelivered("no_stream", n),
            }
        }
    }

    /// Retries relays until `cancel` (see the module header).
    pub async fn run_retries(self: Arc<Self>, cancel: CancellationToken) {
        let mut every = tokio::time::interval(RETRY_TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let now = Instant::now();
            let mut again = Vec::new();
            {
                let mut guard = lock(&self.pending);
                let Pending { traces, held } = &mut *guard;
                traces.retain(|_, r| {
                    let age = now.saturating_duration_since(r.first);
                    let keep = if r.answered {
                        age < KEEP_LINGER
                    } else {
                        age < PENDING_TTL
                    };
                    if !keep {
                        release(held, &r.owner);
                    }
                    keep
                });
                for r in traces.values_mut() {
                    let due = if r.answered {
                        // A kept trace whose shard moved to another worker:
                        // the new one must learn about the keep.
                        let moved =
                            r.sent_to.is_some() && self.plane.worker_of(r.shard) != r.sent_to;
                        if moved {
                            r.sent_to = None;
                        }
                        moved
                    } else {
                        now >= r.next_try
                    };
                    if due {
                        r.next_try = now + RETRY_TICK;
                        again.extend(r.digests.iter().cloned());
                    }
                }
            }
            if !again.is_empty() {
                self.metrics.retried(again.len());
                self.send(again).await;
            }
        }
    }
}

/// The Peer handler of topic `Verdicts`.
#[derive(Debug)]
pub struct VerdictsHandler(pub Arc<Relay>);

impl PeerHandler for VerdictsHandler {
    fn handle(
        &self,
        _from: NodeId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let relay = Arc::clone(&self.0);
        Box::pin(async move {
            let v = PeerVerdicts::decode(payload.as_slice())
                .map_err(|e| format!("undecodable verdicts: {e}"))?;
            relay.deliver(v.verdicts);
            Ok(Vec::new())
        })
    }
}
