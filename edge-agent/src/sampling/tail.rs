//! Tail sampling: hold each trace's spans for a decision window, then keep
//! or drop the whole trace by policy (like the OTel Collector's
//! `tail_sampling` processor). Pure: no I/O, no tasks, time from an injected
//! [`Clock`], so every policy is tested table-driven.
//!
//! Memory: spans are held *encoded*, one [`Fragment`] per trace and incoming
//! scope: the encoded `ScopeSpans` with the trace id removed from every span
//! (it is the map key; 18 bytes a span) and a shared pointer to the
//! request's encoded resource. Each trace keeps a small summary updated as
//! spans arrive (first start, last end, span count, statuses seen, one bit
//! per attribute predicate); policies are evaluated on the summary, so a
//! decision never decodes the spans. On release the trace id is written back
//! into each span while the `ResourceSpans` is assembled.
//!
//! - **Window**: a trace is decided `decision_wait_ms` after its first span.
//! - **Caps**: above `max_traces` or `max_bytes`, the oldest trace is decided
//!   early with what has arrived (not dropped undecided: its spans were
//!   accepted).
//! - **Order**: policies are tried in order; the first that keeps names the
//!   trace (`meridian.sampling.policy` on every resource of the trace, added
//!   by appending an encoded `Resource` that protobuf merges into the
//!   fragment's). Rate-limiting budgets are consumed only by the policy that
//!   keeps.
//! - **Late spans** of a decided trace follow the cached decision (a bounded
//!   FIFO of recent decisions).
//! - **Durability**: held spans are in memory; the client was answered on
//!   receipt, as in the Collector. A crash loses undecided traces.
//! - **Cross-cluster verdicts** ([`TailSampler::set_verdicts`]): each
//!   decision also yields a [`Digest`] for the gateway. A local keep is
//!   final (a trace kept anywhere is kept everywhere); a local drop holds
//!   the trace (and its later spans) until [`TailSampler::verdict`] or the
//!   verdict timeout, when the local drop stands. Waiting traces count
//!   toward the caps; when full, the oldest waiting trace takes its local
//!   verdict first ([`Released::forced_local`]).
//!
//! Policies are compiled and judged by [`judge`], which the gateway's
//! combiner shares.

pub mod judge;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use model::{TraceId, sampling::TailConfig};
use prost::Message;
use proto::otlp::{ExportTraceServiceRequest, Resource, ResourceSpans};

use super::head;
pub use judge::{Judge, STATUS_ERROR, STATUS_OK, STATUS_UNSET, TraceFacts, status_bit};

/// The attribute naming the policy that kept a trace.
pub const POLICY_ATTRIBUTE: &str = "meridian.sampling.policy";

/// Per-trace bookkeeping counted on top of the encoded spans.
const TRACE_OVERHEAD: usize = 160;

/// Attribute predicates are bits in a `u64`.
pub(crate) const MAX_PREDICATES: usize = 64;

/// Time since an arbitrary origin.
pub trait Clock: Send + 'static {
    fn now(&self) -> Duration;
}

/// The process's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock(std::time::Instant);

impl Default for SystemClock {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        self.0
            .fetch_add(d.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TailError {
    #[error("tail policy {policy:?}: {message}")]
    Policy { policy: String, message: String },
    #[error("more than {MAX_PREDICATES} attribute predicates across tail policies")]
    TooManyPredicates,
}

/// Spans of one trace from one incoming scope, held encoded.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// The encoded `Resource`, shared by every fragment of a request.
    resource: Option<Arc<[u8]>>,
    /// The encoded `ScopeSpans`, spans without their trace id.
    scope_spans: Bytes,
}

impl Fragment {
    fn held_bytes(&self) -> usize {
        self.scope_spans.len()
    }
}

/// A kept fragment on its way out: the trace id to restore and the encoded
/// `ResourceSpans{resource{meridian.sampling.policy}}` to append.
#[derive(Debug, Clone)]
struct Part {
    trace_id: TraceId,
    fragment: Fragment,
    suffix: Bytes,
}

/// What a call released: kept spans (ready for
/// [`Released::encode_request`]) and counts.
#[derive(Debug, Default)]
pub struct Released {
    parts: Vec<Part>,
    pub spans_kept: u64,
    pub spans_dropped: u64,
    pub traces_kept: u64,
    pub traces_dropped: u64,
    /// Digests of the traces decided (cross-cluster verdicts on).
    pub digests: Vec<Digest>,
    /// Traces dropped locally but kept by the gateway's verdict.
    pub remote_kept: u64,
    /// Traces whose local drop the gateway's verdict confirmed.
    pub remote_dropped: u64,
    /// Traces that took their local verdict because none came in time.
    pub verdict_timeouts: u64,
    /// Traces that took their local verdict because the caps were reached.
    pub forced_local: u64,
    /// Verdicts for traces no longer held (only later spans follow them).
    pub late_verdicts: u64,
}

impl Released {
    /// No spans to buffer.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// One encoded `ExportTraceServiceRequest` (field 1, repeated
    /// `ResourceSpans`) holding every kept span, built without decoding.
    pub fn encode_request(&self) -> Bytes {
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
        let mut out = BytesMut::new();
        let mut ss = BytesMut::new();
        for part in &self.parts {
            ss.clear();
            restore_trace_ids(&part.fragment.scope_spans, &part.trace_id, &mut ss);
            let res = part.fragment.resource.as_deref();
            let rs_len = res.map_or(0, |r| 1 + encoded_len_varint(r.len() as u64) + r.len())
                + 1
                + encoded_len_varint(ss.len() as u64)
                + ss.len()
                + part.suffix.len();
            encode_key(1, WireType::LengthDelimited, &mut out);
            encode_varint(rs_len as u64, &mut out);
            if let Some(r) = res {
                encode_key(1, WireType::LengthDelimited, &mut out);
                encode_varint(r.len() as u64, &mut out);
                out.put_slice(r);
            }
            encode_key(2, WireType::LengthDelimited, &mut out);
            encode_varint(ss.len() as u64, &mut out);
            out.put_slice(&ss);
            out.put_slice(&part.suffix);
        }
        out.freeze()
    }

    /// Adds `other`'s spans and counts to these.
    pub fn absorb(&mut self, other: Released) {
        self.parts.extend(other.parts);
        self.spans_kept += other.spans_kept;
        self.spans_dropped += other.spans_dropped;
        self.traces_kept += other.traces_kept;
        self.traces_dropped += other.traces_dropped;
        self.digests.extend(other.digests);
        self.remote_kept += other.remote_kept;
        self.remote_dropped += other.remote_dropped;
        self.verdict_timeouts += other.verdict_timeouts;
        self.forced_local += other.forced_local;
        self.late_verdicts += other.late_verdicts;
    }
}

/// Copies an encoded `ScopeSpans`, writing `trace_id` (field 1) at the
/// front of every span (field 2). Fields it does not know are copied as is.
fn restore_trace_ids(scope_spans: &[u8], trace_id: &TraceId, out: &mut BytesMut) {
    use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
    const ID_FIELD: usize = 2 + 16;
    let mut b = scope_spans;
    while !b.is_empty() {
        let start = b;
        let Ok((tag, wt)) = decode_key(&mut b) else {
            break;
        };
        let skip = match wt {
            WireType::Varint => decode_varint(&mut b).map(|_| 0).ok(),
            WireType::SixtyFourBit => Some(8),
            WireType::ThirtyTwoBit => Some(4),
            WireType::LengthDelimited => decode_varint(&mut b).ok().map(|l| l as usize),
            _ => None,
        };
        let Some(skip) = skip.filter(|n| *n <= b.len()) else {
            // We encoded this ourselves; a malformed tail cannot happen, but
            // never read past the end.
            break;
        };
        if tag == 2 && wt == WireType::LengthDelimited {
            encode_key(2, WireType::LengthDelimited, out);
            encode_varint((skip + ID_FIELD) as u64, out);
            encode_key(1, WireType::LengthDelimited, out);
            encode_varint(16, out);
            out.put_slice(trace_id.as_bytes());
            out.put_slice(&b[..skip]);
        } else {
            let header = start.len() - b.len();
            out.put_slice(&start[..header + skip]);
        }
        b = &b[skip..];
    }
}

/// A point-in-time view for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailUsage {
    /// Traces held: in their window, or waiting for a verdict.
    pub traces: usize,
    pub spans: u64,
    pub bytes: usize,
    pub decided_cached: usize,
    /// Of `traces`, those whose local verdict (drop) waits for the
    /// gateway's.
    pub awaiting: usize,
}

/// What this cluster saw of a trace when its local decision was due; sent
/// to the gateway for the cross-cluster decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub facts: TraceFacts,
    /// Encoded span bytes held for the trace.
    pub bytes: u64,
    /// The local policy that kept it; `None`: the local verdict is drop.
    pub kept_by: Option<String>,
    /// A report, not a vote: no verdict came in time and the spans were
    /// dropped for good.
    pub dropped: bool,
}

#[derive(Debug)]
struct Pending {
    first_start: u64,
    last_end: u64,
    spans: u64,
    statuses: u8,
    matched: u64,
    /// Most traces arrive in one request: the first fragment is inline.
    first: Fragment,
    more: Vec<Fragment>,
    bytes: usize,
}

impl Pending {
    fn facts(&self, trace_id: TraceId) -> TraceFacts {
        TraceFacts {
            trace_id,
            first_start: self.first_start.min(self.last_end),
            last_end: self.last_end,
            spans: self.spans,
            statuses: self.statuses,
            matched: self.matched,
        }
    }

    fn add(&mut self, f: Arrival) {
        self.first_start = self.first_start.min(f.first_start);
        self.last_end = self.last_end.max(f.last_end);
        self.spans += f.spans;
        self.statuses |= f.statuses;
        self.matched |= f.bits;
        self.bytes += f.fragment.held_bytes();
        self.more.push(f.fragment);
    }

    fn parts(self, trace_id: TraceId, suffix: &Bytes) -> impl Iterator<Item = Part> {
        std::iter::once(self.first)
            .chain(self.more)
            .map(move |fragment| Part {
                trace_id,
                fragment,
                suffix: suffix.clone(),
            })
    }
}

/// One trace's spans of one incoming scope, summarised.
struct Arrival {
    fragment: Fragment,
    first_start: u64,
    last_end: u64,
    spans: u64,
    statuses: u8,
    bits: u64,
}

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

fn policy_suffix(name: &str) -> Bytes {
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![proto::otlp::string_kv(POLICY_ATTRIBUTE, name)],
            ..Default::default()
        }),
        ..Default::default()
    };
    Bytes::from(rs.encode_to_vec())
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
        let now = self.clock.now();
        let mut out = Released::default();
        for rs in req.resource_spans {
            let resource_bits = rs
                .resource
                .as_ref()
                .map_or(0, |r| self.judge.attribute_bits(&r.attributes));
            let resource: Option<Arc<[u8]>> =
                rs.resource.as_ref().map(|r| Arc::from(r.encode_to_vec()));
            for ss in rs.scope_spans {
                let scope_enc = ss.scope.as_ref().map(Message::encode_to_vec);
                // Group this scope's spans by trace, keeping arrival order.
                let mut groups: Vec<(TraceId, Vec<proto::otlp::Span>)> = Vec::new();
                let mut index: HashMap<TraceId, usize> = HashMap::new();
                for span in ss.spans {
                    // Receivers validated ids; anything else is skipped.
                    let Ok(tid) = TraceId::from_bytes(&span.trace_id) else {
                        continue;
                    };
                    let i = *index.entry(tid).or_insert_with(|| {
                        groups.push((tid, Vec::new()));
                        groups.len() - 1
                    });
                    groups[i].1.push(span);
                }
                for (tid, mut spans) in groups {
                    let n = spans.len() as u64;
                    let mut bits = resource_bits;
                    let mut first_start = u64::MAX;
                    let mut last_end = 0;
                    let mut statuses = 0;
                    for s in &mut spans {
                        bits |= self.judge.attribute_bits(&s.attributes);
                        first_start = first_start.min(s.start_time_unix_nano);
                        last_end = last_end.max(s.end_time_unix_nano);
                        statuses |= status_bit(s.status.as_ref().map_or(0, |st| st.code));
                        // Held once, as the map key.
                        s.trace_id = Vec::new();
                    }
                    let arrival = Arrival {
                        fragment: Fragment {
                            resource: resource.clone(),
                            scope_spans: encode_scope_spans(
                                scope_enc.as_deref(),
                                &ss.schema_url,
                                &spans,
                            ),
                        },
                        first_start,
                        last_end,
                        spans: n,
                        statuses,
                        bits,
                    };
                    self.hold(tid, arrival, now, &mut out);
                }
            }
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
        let now = self.clock.now();
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
        let now = self.clock.now();
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
        let now = self.clock.now();
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

/// Encodes one `ScopeSpans` holding `spans` under the given (already
/// encoded) scope.
fn encode_scope_spans(
    scope: Option<&[u8]>,
    schema_url: &str,
    spans: &[proto::otlp::Span],
) -> Bytes {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    let mut len = scope.map_or(0, |s| 1 + encoded_len_varint(s.len() as u64) + s.len());
    for s in spans {
        let l = s.encoded_len();
        len += 1 + encoded_len_varint(l as u64) + l;
    }
    if !schema_url.is_empty() {
        len += 1 + encoded_len_varint(schema_url.len() as u64) + schema_url.len();
    }
    let mut out = BytesMut::with_capacity(len);
    if let Some(s) = scope {
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(s.len() as u64, &mut out);
        out.put_slice(s);
    }
    for s in spans {
        prost::encoding::message::encode(2, s, &mut out);
    }
    if !schema_url.is_empty() {
        encode_key(3, WireType::LengthDelimited, &mut out);
        encode_varint(schema_url.len() as u64, &mut out);
        out.put_slice(schema_url.as_bytes());
    }
    out.freeze()
}

#[cfg(test)]
mod tests;
