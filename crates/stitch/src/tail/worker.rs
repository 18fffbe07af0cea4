//! The worker's shell around the [`Combiner`]: serves relayed digests
//! (Peer topic `Digests`), closes windows, and sends verdicts to the
//! relaying nodes (Peer topic `Verdicts`) through a bounded outbox.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, future::BoxFuture};
use prost::Message;
use proto::federation::{PeerDigests, PeerVerdicts, TraceVerdict};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::{
    combiner::{Combiner, Decision, Offered},
    metrics::TailMetrics,
    shard_of, wire,
};
use control_plane::{
    PeerBus,
    peer::{PeerHandler, Topic},
};
use control_state::NodeId;

/// Verdict messages waiting to be sent to relaying nodes (full: the
/// message is dropped and counted; the relay's retry asks again).
pub const OUTBOX: usize = 1_024;
/// Peer sends in flight at once from the outbox.
const OUTBOX_CONCURRENCY: usize = 8;
/// How often windows are closed.
pub const TICK: Duration = Duration::from_millis(50);
/// A peer send gives up after this long.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Worker {
    plane: Arc<dyn PeerBus>,
    combiner: Mutex<Combiner>,
    outbox: mpsc::Sender<(NodeId, PeerVerdicts)>,
    metrics: TailMetrics,
    /// Where drop reports go (the trace summaries of this node's shards).
    stitch: Option<crate::Stitcher>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        plane: Arc<dyn PeerBus>,
        combiner: Combiner,
        metrics: TailMetrics,
        stitch: Option<crate::Stitcher>,
    ) -> (Arc<Self>, mpsc::Receiver<(NodeId, PeerVerdicts)>) {
        let (outbox, rx) = mpsc::channel(OUTBOX);
        (
            Arc::new(Self {
                plane,
                combiner: Mutex::new(combiner),
                outbox,
                metrics,
                stitch,
            }),
            rx,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Combiner> {
        // Every combiner call completes before the lock is released.
        self.combiner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves one relayed batch: the verdicts already known are the
    /// answer; decisions other relays need go to the outbox. Refused whole
    /// when this node does not work on a digest's shard now (the relay
    /// retries with the worker it finds then).
    pub fn digests(&self, from: NodeId, batch: PeerDigests) -> Result<PeerVerdicts, String> {
        let state = self.plane.state();
        for d in &batch.digests {
            let shard = shard_of(&state, d);
            if !self.plane.works_on(shard) {
                return Err(format!(
                    "node {} does not decide for shard {shard} now",
                    self.plane.id()
                ));
            }
        }
        let now = Instant::now();
        let mut answer = Vec::new();
        let mut others: Vec<Decision> = Vec::new();
        let mut late = 0;
        {
            let mut c = self.lock();
            for d in &batch.digests {
                let Some((tid, digest)) = wire::cluster_digest(d) else {
                    continue;
                };
                if wire::is_dropped_report(d) {
                    if let Some(stitch) = &self.stitch {
                        stitch.note_dropped(crate::DroppedReport {
                            trace: tid,
                            shard: shard_of(&state, d),
                            cluster: digest.cluster,
                            reason: "verdict_timeout".into(),
                            spans: digest.spans,
                        });
                    }
                    continue;
                }
                match c.offer(from, tid, digest, now, &mut others) {
                    Offered::Open => {}
                    Offered::Late(v) => {
                        late += 1;
                        answer.push(wire::verdict(tid, &v));
                    }
                    Offered::Decided(decision) => {
                        answer.push(wire::verdict(tid, &decision.verdict));
                        self.metrics
                            .decided(decision.verdict.is_some(), decision.by);
                        let mut rest = decision;
                        rest.relays.remove(&from);
                        others.push(rest);
                    }
                }
            }
            self.metrics.set_open(c.open_traces());
        }
        self.metrics.late(late);
        self.post(others);
        Ok(PeerVerdicts { verdicts: answer })
    }

    /// Queues verdicts for every relay of `decisions`, one message per node.
    fn post(&self, decisions: Vec<Decision>) {
        let mut by_node: BTreeMap<NodeId, Vec<TraceVerdict>> = BTreeMap::new();
        for d in decisions {
            let v = wire::verdict(d.trace_id, &d.verdict);
            for node in d.relays {
                by_node.entry(node).or_default().push(v.clone());
            }
        }
        for (node, verdicts) in by_node {
            let n = verdicts.len();
            if self
                .outbox
                .try_send((node, PeerVerdicts { verdicts }))
                .is_err()
            {
                self.metrics.undelivered("outbox_full", n);
            }
        }
    }

    /// Closes windows every [`TICK`] and follows the gateway-side policy,
    /// until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let state = self.plane.state();
            let tail = state.policies.get("*").and_then(|p| p.tail.as_ref());
            let decisions = {
                let mut c = self.lock();
                match c.set_policy(tail) {
                    Ok(()) => warned = false,
                    Err(error) if !warned => {
                        warned = true;
                        tracing::warn!(%error, "the gateway-side tail policy does not compile; deciding keep-if-any only");
                    }
                    Err(_) => {}
                }
                let d = c.expire(Instant::now());
                self.metrics.set_open(c.open_traces());
                d
            };
            for d in &decisions {
                self.metrics.decided(d.verdict.is_some(), d.by);
            }
            self.post(decisions);
        }
    }

    /// Sends the outbox's verdicts to their relaying nodes until the
    /// outbox closes or `cancel`.
    pub async fn send_outbox(
        plane: Arc<dyn PeerBus>,
        outbox: mpsc::Receiver<(NodeId, PeerVerdicts)>,
        metrics: TailMetrics,
        cancel: CancellationToken,
    ) {
        let sends = ReceiverStream::new(outbox).for_each_concurrent(
            OUTBOX_CONCURRENCY,
            |(node, verdicts)| {
                let plane = Arc::clone(&plane);
                let metrics = metrics.clone();
                async move {
                    let n = verdicts.verdicts.len();
                    let body = verdicts.encode_to_vec();
                    if let Err(error) = plane
                        .send_peer(node, Topic::Verdicts, &body, PEER_TIMEOUT)
                        .await
                    {
                        metrics.undelivered("peer_unreachable", n);
                        tracing::debug!(node, %error, "cannot deliver tail verdicts; the relay will ask again");
                    }
                }
            },
        );
        tokio::select! {
            _ = cancel.cancelled() => {}
            () = sends => {}
        }
    }
}

/// The Peer handler of topic `Digests`.
#[derive(Debug)]
pub struct DigestsHandler(pub Arc<Worker>);

impl PeerHandler for DigestsHandler {
    fn handle(
        &self,
        from: NodeId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let worker = Arc::clone(&self.0);
        Box::pin(async move {
            let batch = PeerDigests::decode(payload.as_slice())
                .map_err(|e| format!("undecodable digests: {e}"))?;
            worker.digests(from, batch).map(|v| v.encode_to_vec())
        })
    }
}
