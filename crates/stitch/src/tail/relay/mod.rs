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
//! - At most `max_pending` traces wait (full: new traces are not relayed,
//!   counted as `queue_full`; their agents apply local verdicts).

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
use proto::federation::{PeerDigest, PeerDigests, PeerVerdicts, TraceVerdict, VerdictBatch};
use store::shard::ShardId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::{metrics::TailMetrics, shard_of, wire, worker::PEER_TIMEOUT};
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

pub type VerdictSender = mpsc::Sender<Result<VerdictBatch, Status>>;

#[derive(Debug)]
struct Relayed {
    shard: ShardId,
    streams: Vec<u64>,
    /// One per cluster: the latest.
    digests: Vec<PeerDigest>,
    first: Instant,
    next_try: Instant,
    /// The worker it reached last (`None`: not reached yet).
    sent_to: Option<NodeId>,
    answered: bool,
}

impl Relayed {
    fn keeps(&self) -> bool {
        self.digests.iter().any(wire::is_keep)
    }
}

pub struct Relay {
    plane: Arc<dyn PeerBus>,
    metrics: TailMetrics,
    window: Duration,
    max_pending: usize,
    next_stream: AtomicU64,
    streams: Mutex<HashMap<u64, VerdictSender>>,
    pending: Mutex<HashMap<TraceId, Relayed>>,
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
            streams: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub fn register(&self, tx: VerdictSender) -> u64 {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        lock(&self.streams).insert(id, tx);
        id
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.streams).remove(&id);
    }

    /// Traces waiting for a verdict (or lingering) on this node.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Remembers and relays the checked digests of stream `stream`.
    pub async fn accept(&self, stream: u64, digests: Vec<PeerDigest>) {
        let now = Instant::now();
        let state = self.plane.state();
        let mut send = Vec::with_capacity(digests.len());
        {
            let mut pending = lock(&self.pending);
            for d in digests {
                let Some(tid) = wire::trace_of(&d) else {
                    continue;
                };
                // A drop report waits for nothing: relayed once, not
                // remembered (it only feeds the trace's summary).
                if wire::is_dropped_report(&d) {
                    send.push(d);
                    continue;
                }
                if !pending.contains_key(&tid) && pending.len() >= self.max_pending {
                    self.metrics.digests("queue_full", 1);
                    continue;
                }
                let r = pending.entry(tid).or_insert_with(|| Relayed {
                    shard: shard_of(&state, &d),
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
        self.metrics.digests("relayed", send.len());
        self.send(send).await;
    }

    /// Relays `digests` to the workers of their shards.
    async fn send(&self, digests: Vec<PeerDigest>) {
        if digests.is_empty() {
            return;
        }
        let state = self.plane.state();
        let mut by_worker: BTreeMap<NodeId, Vec<PeerDigest>> = BTreeMap::new();
        let mut unroutable = 0;
        for d in digests {
            match self.plane.worker_of(shard_of(&state, &d)) {
                Some(w) => by_worker.entry(w).or_default().push(d),
                None => unroutable += 1,
            }
        }
        if unroutable > 0 {
            self.metrics.digests("unroutable", unroutable);
        }
        for (worker, digests) in by_worker {
            let ids: Vec<TraceId> = digests.iter().filter_map(wire::trace_of).collect();
            let body = PeerDigests { digests }.encode_to_vec();
            let answer = self
                .plane
                .send_peer(worker, Topic::Digests, &body, PEER_TIMEOUT)
                .await;
            let now = Instant::now();
            let reached = answer.is_ok();
            {
                let mut pending = lock(&self.pending);
                for id in &ids {
                    if let Some(r) = pending.get_mut(id) {
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
                let Some(r) = pending.get_mut(&tid) else {
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
            match streams.get(&id) {
                Some(tx) => {
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
                let mut pending = lock(&self.pending);
                pending.retain(|_, r| {
                    let age = now.saturating_duration_since(r.first);
                    if r.answered {
                        return age < KEEP_LINGER;
                    }
                    age < PENDING_TTL
                });
                for r in pending.values_mut() {
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
