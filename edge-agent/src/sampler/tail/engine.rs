//! The tail sampler's engine: decision windows, caps, the cache of recent
//! decisions and the wait for cross-cluster verdicts, over the traces that
//! [`super::held`] keeps encoded. Time is the injected clock's monotonic
//! reading.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use bytes::Bytes;
use model::{TraceId, sampling::TailConfig};
use proto::otlp::ExportTraceServiceRequest;
use sampling::tail::{Judge, TailError};
use telemetry::clock::Clock;

use super::{
    Digest, TRACE_OVERHEAD, TailUsage,
    held::{self, Arrival, Part, Pending, Released, policy_suffix},
};

/// A trace whose local verdict is drop, held until the gateway's verdict
/// or the verdict timeout.
#[derive(Debug)]
struct Awaiting {
    pending: Pending,
    since: Duration,
    digest: Digest,
}

/// The tail sampler. Not thread-safe by itself; the agent wraps it in a
/// mutex and calls [`TailSampler::tick`] periodically.
pub struct TailSampler<C> {
    clock: C,
    wait: Duration,
    max_traces: usize,
    max_bytes: usize,
    judge: Judge,
    /// Per policy name index, the encoded `ResourceSpans{resource{attr}}`
    /// suffix that tags a fragment with the name.
    suffixes: Vec<Bytes>,
    pending: HashMap<TraceId, Pending>,
    order: VecDeque<(Duration, TraceId)>,
    /// Cross-cluster verdicts: `Some(timeout)` holds locally dropped traces
    /// for a verdict (see [`TailSampler::set_verdicts`]).
    verdict_timeout: Option<Duration>,
    /// A stream to the gateway is open: digests are made and drops held.
    connected: bool,
    awaiting: HashMap<TraceId, Awaiting>,
    awaiting_order: VecDeque<(Duration, TraceId)>,
    /// Digests of recent local keeps (for a verdict timeout, at most
    /// `decided_cap`): sent again on a new stream, in case the gateway that
    /// took them died before telling the other clusters.
    recent_keeps: VecDeque<(Duration, Digest)>,
    bytes: usize,
    spans: u64,
    /// The decision of recent traces: the suffix naming the keeping policy,
    /// or `None` for drop.
    decided: HashMap<TraceId, Option<Bytes>>,
    decided_order: VecDeque<TraceId>,
    decided_cap: usize,
}

impl<C> std::fmt::Debug for TailSampler<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailSampler")
            .field("traces", &self.pending.len())
            .field("awaiting", &self.awaiting.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> TailSampler<C> {
    pub fn new(cfg: &TailConfig, clock: C) -> Result<Self, TailError> {
        let judge = Judge::new(cfg)?;
        let suffixes = judge.names().iter().map(|n| policy_suffix(n)).collect();
        Ok(Self {
            clock,
            wait: Duration::from_millis(cfg.decision_wait_ms),
            max_traces: cfg.max_traces,
            max_bytes: cfg.max_bytes,
            judge,
            suffixes,
            pending: HashMap::new(),
            order: VecDeque::new(),
            verdict_timeout: None,
            connected: true,
            awaiting: HashMap::new(),
            awaiting_order: VecDeque::new(),
            recent_keeps: VecDeque::new(),
            bytes: 0,
            spans: 0,
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            decided_cap: cfg.max_traces.saturating_mul(2).max(1024),
        })
    }

    /// Turns cross-cluster verdicts on (`Some(timeout)`) or off. On: every
    /// decision yields a [`Digest`] (in [`Released::digests`]); a local
    /// keep is final, a local drop is held until [`Self::verdict`] or the
    /// timeout. Off: local decisions are final and no digests are made;
    /// traces already waiting still wait for their verdict or timeout.
    pub fn set_verdicts(&mut self, timeout: Option<Duration>) {
        self.verdict_timeout = timeout;
    }

    /// With verdicts on: whether the stream to the gateway is open (the
    /// default). While it is not, no digests are sent; local keeps are
    /// final and remembered, and local drops wait for a verdict as usual
    /// (up to the timeout): both are sent by [`Self::resend_digests`] once
    /// the stream is back.
    pub fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
    }

    pub fn usage(&self) -> TailUsage {
        TailUsage {
            traces: self.pending.len() + self.awaiting.len(),
            spans: self.spans,
            bytes: self.bytes,
            decided_cached: self.decided.len(),
            awaiting: self.awaiting.len(),
        }
    }

    /// Takes a validated request. Spans of undecided traces are held; spans
    /// of decided traces (late spans) and traces decided early because a
    /// cap was reached are released now.
    pub fn ingest(&mut self, req: ExportTraceServiceRequest) -> Released {
        let now = self.clock.monotonic();
        let mut out = Released::default();
        for (tid, arrival) in held::arrivals(req, &self.judge) {
            self.hold(tid, arrival, now, &mut out);
        }
        while self.pending.len() + self.awaiting.len() > self.max_traces
            || self.bytes > self.max_bytes
        {
            // Full: the oldest trace waiting for a verdict takes its local
            // one; else the oldest in its window is decided early.
            if let Some(tid) = self.oldest_awaiting() {
                out.forced_local += 1;
                out.absorb(self.resolve(tid, None));
                continue;
            }
            let Some((_, tid)) = self.order.pop_front() else {
                break;
            };
            out.absorb(self.decide(tid, now, true));
        }
        out
    }

    fn hold(&mut self, tid: TraceId, a: Arrival, now: Duration, out: &mut Released) {
        if let Some(decision) = self.decided.get(&tid) {
            match decision {
                Some(suffix) => {
                    out.spans_kept += a.spans;
                    out.parts.push(Part {
                        trace_id: tid,
                        fragment: a.fragment,
                        suffix: suffix.clone(),
                    });
                }
                None => out.spans_dropped += a.spans,
            }
            return;
        }
        let size = a.fragment.held_bytes();
        self.spans += a.spans;
        if let Some(w) = self.awaiting.get_mut(&tid) {
            // Follows the verdict the trace waits for.
            w.pending.add(a);
            self.bytes += size;
            return;
        }
        match self.pending.entry(tid) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.get_mut().add(a);
                self.bytes += size;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                self.order.push_back((now, tid));
                e.insert(Pending {
                    first_start: a.first_start,
                    last_end: a.last_end,
                    spans: a.spans,
                    statuses: a.statuses,
                    matched: a.bits,
                    first: a.fragment,
                    more: Vec::new(),
                    bytes: TRACE_OVERHEAD + size,
                });
                self.bytes += TRACE_OVERHEAD + size;
            }
        }
    }

    fn oldest_awaiting(&mut self) -> Option<TraceId> {
        while let Some((since, tid)) = self.awaiting_order.pop_front() {
            if self.awaiting.get(&tid).is_some_and(|w| w.since == since) {
                return Some(tid);
            }
        }
        None
    }

    /// Decides every trace whose window has passed, and gives traces whose
    /// verdict did not come within the timeout their local verdict.
    pub fn tick(&mut self) -> Released {
        let now = self.clock.monotonic();
        let mut out = Released::default();
        while let Some((seen, tid)) = self.order.front().copied() {
            if now.saturating_sub(seen) < self.wait {
                break;
            }
            self.order.pop_front();
            out.absorb(self.decide(tid, now, true));
        }
        let timeout = self.verdict_timeout.unwrap_or_default();
        while let Some((since, tid)) = self.awaiting_order.front().copied() {
            let current = self.awaiting.get(&tid).is_some_and(|w| w.since == since);
            if current && now.saturating_sub(since) < timeout {
                break;
            }
            self.awaiting_order.pop_front();
            if current {
                out.verdict_timeouts += 1;
                // Tell the gateway the spans are gone for good: if another
                // cluster kept the trace, its summary names this cluster.
                // Queued even while the stream is down (sent once it is
                // back, if the digest queue has room).
                if let Some(w) = self.awaiting.get(&tid) {
                    out.digests.push(Digest {
                        dropped: true,
                        ..w.digest.clone()
                    });
                }
                out.absorb(self.resolve(tid, None));
            }
        }
        out
    }

    /// Decides everything now by the local policies (shutdown, a policy
    /// change); no digests.
    pub fn flush(&mut self) -> Released {
        let now = self.clock.monotonic();
        let mut out = Released::default();
        while let Some((_, tid)) = self.order.pop_front() {
            out.absorb(self.decide(tid, now, false));
        }
        let waiting: Vec<TraceId> = self.awaiting.keys().copied().collect();
        for tid in waiting {
            out.absorb(self.resolve(tid, None));
        }
        self.awaiting_order.clear();
        out
    }

    /// Applies the gateway's verdict for `tid`: `Some(policy)` keeps it
    /// (tagged with that policy), `None` drops it. For a trace no longer
    /// held (its verdict timed out, or it was never reported) only later
    /// spans follow a keep, and [`Released::late_verdicts`] counts it.
    pub fn verdict(&mut self, tid: TraceId, keep: Option<&str>) -> Released {
        if self.awaiting.contains_key(&tid) {
            let mut out = self.resolve(tid, keep.map(policy_suffix));
            match keep {
                Some(_) => out.remote_kept += 1,
                None => out.remote_dropped += 1,
            }
            return out;
        }
        let mut out = Released::default();
        if self.pending.contains_key(&tid) {
            // Not reported yet: its window runs on, and its own digest
            // will be answered with the stored verdict.
            return out;
        }
        if let Some(policy) = keep {
            match self.decided.get_mut(&tid) {
                Some(d @ None) => {
                    *d = Some(policy_suffix(policy));
                    out.late_verdicts += 1;
                }
                Some(Some(_)) => {}
                None => out.late_verdicts += 1,
            }
        }
        out
    }

    /// What to send again on a new stream: the digests of every trace
    /// waiting for a verdict, and of the traces kept locally within the
    /// last verdict timeout (other clusters may still wait on them).
    pub fn resend_digests(&mut self) -> Vec<Digest> {
        let now = self.clock.monotonic();
        self.prune_keeps(now);
        self.awaiting
            .values()
            .map(|w| w.digest.clone())
            .chain(self.recent_keeps.iter().map(|(_, d)| d.clone()))
            .collect()
    }

    fn prune_keeps(&mut self, now: Duration) {
        let linger = self.verdict_timeout.unwrap_or_default();
        while self.recent_keeps.len() > self.decided_cap
            || self
                .recent_keeps
                .front()
                .is_some_and(|(at, _)| now.saturating_sub(*at) >= linger)
        {
            self.recent_keeps.pop_front();
        }
    }

    fn remember(&mut self, tid: TraceId, decision: Option<Bytes>) {
        self.decided.insert(tid, decision);
        self.decided_order.push_back(tid);
        while self.decided_order.len() > self.decided_cap {
            if let Some(old) = self.decided_order.pop_front() {
                self.decided.remove(&old);
            }
        }
    }

    /// Local decision for a trace whose window passed. With verdicts on
    /// and `hold`, a dropped trace waits for the gateway's verdict.
    fn decide(&mut self, tid: TraceId, now: Duration, hold: bool) -> Released {
        let mut out = Released::default();
        let Some(p) = self.pending.remove(&tid) else {
            return out;
        };
        let facts = p.facts(tid);
        let kept = self.judge.decide(&facts, now);
        let digest = |kept_by: Option<String>| Digest {
            facts,
            bytes: p.bytes.saturating_sub(TRACE_OVERHEAD) as u64,
            kept_by,
            dropped: false,
        };
        let remember = hold && self.verdict_timeout.is_some();
        let report = remember && self.connected;
        match kept {
            Some(name) => {
                if remember {
                    let d = digest(Some(self.judge.name(name).to_owned()));
                    self.recent_keeps.push_back((now, d.clone()));
                    self.prune_keeps(now);
                    if report {
                        out.digests.push(d);
                    }
                }
                let suffix = self.suffixes[name as usize].clone();
                self.bytes = self.bytes.saturating_sub(p.bytes);
                self.spans = self.spans.saturating_sub(p.spans);
                out.spans_kept = p.spans;
                out.traces_kept = 1;
                out.parts.extend(p.parts(tid, &suffix));
                self.remember(tid, Some(suffix));
            }
            // A drop waits for the verdict even while the stream is down:
            // its digest goes out when the stream is back
            // (`resend_digests`), and the local drop stands only at the
            // timeout. Dropping at once would leave the trace partial when
            // another cluster kept it.
            None if remember => {
                let d = digest(None);
                if report {
                    out.digests.push(d.clone());
                }
                self.awaiting_order.push_back((now, tid));
                self.awaiting.insert(
                    tid,
                    Awaiting {
                        pending: p,
                        since: now,
                        digest: d,
                    },
                );
            }
            None => {
                self.bytes = self.bytes.saturating_sub(p.bytes);
                self.spans = self.spans.saturating_sub(p.spans);
                out.spans_dropped = p.spans;
                out.traces_dropped = 1;
                self.remember(tid, None);
            }
        }
        out
    }

    /// Ends a trace's wait for a verdict: kept under `keep`'s suffix, or
    /// dropped.
    fn resolve(&mut self, tid: TraceId, keep: Option<Bytes>) -> Released {
        let mut out = Released::default();
        let Some(w) = self.awaiting.remove(&tid) else {
            return out;
        };
        let p = w.pending;
        self.bytes = self.bytes.saturating_sub(p.bytes);
        self.spans = self.spans.saturating_sub(p.spans);
        match &keep {
            Some(suffix) => {
                out.spans_kept = p.spans;
                out.traces_kept = 1;
                out.parts.extend(p.parts(tid, suffix));
            }
            None => {
                out.spans_dropped = p.spans;
                out.traces_dropped = 1;
            }
        }
        self.remember(tid, keep);
        out
    }
}
