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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use model::{
    TraceId,
    sampling::{TailConfig, TailPolicy, TailRule},
};
use prost::Message;
use proto::otlp::{
    AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, any_value,
};

use super::head;

/// The attribute naming the policy that kept a trace.
pub const POLICY_ATTRIBUTE: &str = "meridian.sampling.policy";

/// Per-trace bookkeeping counted on top of the encoded spans.
const TRACE_OVERHEAD: usize = 160;

/// Attribute predicates are bits in a `u64`.
const MAX_PREDICATES: usize = 64;

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
}

impl Released {
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
    pub traces: usize,
    pub spans: u64,
    pub bytes: usize,
    pub decided_cached: usize,
}

#[derive(Debug)]
enum Predicate {
    Str {
        key: String,
        values: HashSet<String>,
    },
    Num {
        key: String,
        min: f64,
        max: f64,
    },
    Bool {
        key: String,
        value: bool,
    },
}

impl Predicate {
    fn key(&self) -> &str {
        match self {
            Self::Str { key, .. } | Self::Num { key, .. } | Self::Bool { key, .. } => key,
        }
    }

    fn matches(&self, v: &AnyValue) -> bool {
        use any_value::Value as V;
        match (self, v.value.as_ref()) {
            (Self::Str { values, .. }, Some(V::StringValue(s))) => values.contains(s),
            (Self::Num { min, max, .. }, Some(V::IntValue(i))) => {
                let f = *i as f64;
                f >= *min && f <= *max
            }
            (Self::Num { min, max, .. }, Some(V::DoubleValue(f))) => f >= min && f <= max,
            (Self::Bool { value, .. }, Some(V::BoolValue(b))) => b == value,
            _ => false,
        }
    }
}

/// A rate budget per wall second (of the injected clock).
#[derive(Debug, Default)]
struct Budget {
    second: u64,
    used: u64,
}

impl Budget {
    fn try_take(&mut self, now: Duration, limit: u64, spans: u64) -> bool {
        let s = now.as_secs();
        if s != self.second {
            self.second = s;
            self.used = 0;
        }
        if self.used.saturating_add(spans) > limit {
            return false;
        }
        self.used += spans;
        true
    }
}

#[derive(Debug)]
enum Node {
    Always,
    Latency {
        min_ns: u64,
    },
    Status {
        mask: u8,
    },
    Predicate {
        bit: u32,
    },
    Probabilistic {
        threshold: u64,
    },
    RateLimiting {
        spans_per_second: u64,
        budget: usize,
    },
    SpanCount {
        min: u64,
        max: u64,
    },
    And(Vec<Node>),
    Composite {
        subs: Vec<CompositeSub>,
    },
}

#[derive(Debug)]
struct CompositeSub {
    name: u32,
    node: Node,
    spans_per_second: u64,
    budget: usize,
}

/// The status bits of a trace summary.
const STATUS_UNSET: u8 = 1;
const STATUS_OK: u8 = 2;
const STATUS_ERROR: u8 = 4;

fn status_bit(code: i32) -> u8 {
    match code {
        1 => STATUS_OK,
        2 => STATUS_ERROR,
        _ => STATUS_UNSET,
    }
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

/// The tail sampler. Not thread-safe by itself; the agent wraps it in a
/// mutex and calls [`TailSampler::tick`] periodically.
pub struct TailSampler<C> {
    clock: C,
    wait: Duration,
    max_traces: usize,
    max_bytes: usize,
    policies: Vec<(u32, Node)>,
    predicates: Vec<Predicate>,
    budgets: Vec<Budget>,
    /// Per policy name index, the encoded `ResourceSpans{resource{attr}}`
    /// suffix that tags a fragment with the name.
    suffixes: Vec<Bytes>,
    pending: HashMap<TraceId, Pending>,
    order: VecDeque<(Duration, TraceId)>,
    bytes: usize,
    spans: u64,
    decided: HashMap<TraceId, Option<u32>>,
    decided_order: VecDeque<TraceId>,
    decided_cap: usize,
}

impl<C> std::fmt::Debug for TailSampler<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailSampler")
            .field("traces", &self.pending.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

struct Compiler {
    names: Vec<String>,
    predicates: Vec<Predicate>,
    budgets: usize,
}

impl Compiler {
    fn name(&mut self, n: String) -> u32 {
        self.names.push(n);
        (self.names.len() - 1) as u32
    }

    fn predicate(&mut self, p: Predicate) -> Result<Node, TailError> {
        if self.predicates.len() >= MAX_PREDICATES {
            return Err(TailError::TooManyPredicates);
        }
        self.predicates.push(p);
        Ok(Node::Predicate {
            bit: (self.predicates.len() - 1) as u32,
        })
    }

    fn budget(&mut self) -> usize {
        self.budgets += 1;
        self.budgets - 1
    }

    fn node(&mut self, p: &TailPolicy, path: &str) -> Result<Node, TailError> {
        let err = |message: &str| TailError::Policy {
            policy: path.to_owned(),
            message: message.to_owned(),
        };
        Ok(match &p.rule {
            TailRule::AlwaysSample => Node::Always,
            TailRule::Latency { threshold_ms } => Node::Latency {
                min_ns: threshold_ms.saturating_mul(1_000_000),
            },
            TailRule::StatusCode { status_codes } => {
                let mut mask = 0;
                for c in status_codes {
                    mask |= match c.to_ascii_uppercase().as_str() {
                        "OK" => STATUS_OK,
                        "ERROR" => STATUS_ERROR,
                        "UNSET" => STATUS_UNSET,
                        _ => return Err(err("status_codes take OK, ERROR or UNSET")),
                    };
                }
                if mask == 0 {
                    return Err(err("status_codes must not be empty"));
                }
                Node::Status { mask }
            }
            TailRule::StringAttribute { key, values } => {
                if values.is_empty() {
                    return Err(err("values must not be empty"));
                }
                self.predicate(Predicate::Str {
                    key: key.clone(),
                    values: values.iter().cloned().collect(),
                })?
            }
            TailRule::NumericAttribute {
                key,
                min_value,
                max_value,
            } => {
                if min_value > max_value {
                    return Err(err("min_value is above max_value"));
                }
                self.predicate(Predicate::Num {
                    key: key.clone(),
                    min: *min_value,
                    max: *max_value,
                })?
            }
            TailRule::BooleanAttribute { key, value } => self.predicate(Predicate::Bool {
                key: key.clone(),
                value: *value,
            })?,
            TailRule::Probabilistic {
                sampling_percentage,
            } => {
                if !(0.0..=100.0).contains(sampling_percentage) {
                    return Err(err("sampling_percentage must be within 0..=100"));
                }
                Node::Probabilistic {
                    threshold: head::threshold(sampling_percentage / 100.0),
                }
            }
            TailRule::RateLimiting { spans_per_second } => Node::RateLimiting {
                spans_per_second: *spans_per_second,
                budget: self.budget(),
            },
            TailRule::SpanCount {
                min_spans,
                max_spans,
            } => Node::SpanCount {
                min: *min_spans,
                max: max_spans.unwrap_or(u64::MAX),
            },
            TailRule::And { policies } => {
                if policies.is_empty() {
                    return Err(err("and needs sub-policies"));
                }
                Node::And(
                    policies
                        .iter()
                        .map(|s| self.node(s, &format!("{path}/{}", s.name)))
                        .collect::<Result<_, _>>()?,
                )
            }
            TailRule::Composite {
                max_total_spans_per_second,
                policies,
                rate_allocation,
            } => {
                if policies.is_empty() {
                    return Err(err("composite needs sub-policies"));
                }
                let allocated: f64 = rate_allocation.iter().map(|a| a.percent).sum();
                if allocated > 100.0 || rate_allocation.iter().any(|a| a.percent < 0.0) {
                    return Err(err("rate_allocation percentages must be 0..=100 in total"));
                }
                for a in rate_allocation {
                    if !policies.iter().any(|s| s.name == a.policy) {
                        return Err(err(&format!(
                            "rate_allocation names {:?}, which is not a sub-policy",
                            a.policy
                        )));
                    }
                }
                let unallocated = policies
                    .iter()
                    .filter(|s| !rate_allocation.iter().any(|a| a.policy == s.name))
                    .count();
                let rest_share = if unallocated == 0 {
                    0.0
                } else {
                    (100.0 - allocated) / unallocated as f64
                };
                let mut subs = Vec::with_capacity(policies.len());
                for s in policies {
                    let sub_path = format!("{path}/{}", s.name);
                    let node = self.node(s, &sub_path)?;
                    let pct = rate_allocation
                        .iter()
                        .find(|a| a.policy == s.name)
                        .map_or(rest_share, |a| a.percent);
                    subs.push(CompositeSub {
                        name: self.name(sub_path),
                        node,
                        spans_per_second: (*max_total_spans_per_second as f64 * pct / 100.0) as u64,
                        budget: self.budget(),
                    });
                }
                Node::Composite { subs }
            }
        })
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

/// The summary of one trace as policies see it.
struct Summary<'a> {
    trace_id: &'a TraceId,
    p: &'a Pending,
}

impl<C: Clock> TailSampler<C> {
    pub fn new(cfg: &TailConfig, clock: C) -> Result<Self, TailError> {
        let mut c = Compiler {
            names: Vec::new(),
            predicates: Vec::new(),
            budgets: 0,
        };
        let mut policies = Vec::with_capacity(cfg.policies.len());
        for p in &cfg.policies {
            let node = c.node(p, &p.name)?;
            let name = c.name(p.name.clone());
            policies.push((name, node));
        }
        let suffixes = c.names.iter().map(|n| policy_suffix(n)).collect();
        Ok(Self {
            clock,
            wait: Duration::from_millis(cfg.decision_wait_ms),
            max_traces: cfg.max_traces,
            max_bytes: cfg.max_bytes,
            policies,
            predicates: c.predicates,
            budgets: (0..c.budgets).map(|_| Budget::default()).collect(),
            suffixes,
            pending: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            spans: 0,
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            decided_cap: cfg.max_traces.saturating_mul(2).max(1024),
        })
    }

    pub fn usage(&self) -> TailUsage {
        TailUsage {
            traces: self.pending.len(),
            spans: self.spans,
            bytes: self.bytes,
            decided_cached: self.decided.len(),
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
                .map_or(0, |r| self.attribute_bits(&r.attributes));
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
                        bits |= self.attribute_bits(&s.attributes);
                        first_start = first_start.min(s.start_time_unix_nano);
                        last_end = last_end.max(s.end_time_unix_nano);
                        statuses |= status_bit(s.status.as_ref().map_or(0, |st| st.code));
                        // Held once, as the map key.
                        s.trace_id = Vec::new();
                    }
                    let fragment = Fragment {
                        resource: resource.clone(),
                        scope_spans: encode_scope_spans(
                            scope_enc.as_deref(),
                            &ss.schema_url,
                            &spans,
                        ),
                    };
                    if let Some(decision) = self.decided.get(&tid) {
                        match decision {
                            Some(name) => {
                                out.parts.push(Part {
                                    trace_id: tid,
                                    fragment,
                                    suffix: self.suffixes[*name as usize].clone(),
                                });
                                out.spans_kept += n;
                            }
                            None => out.spans_dropped += n,
                        }
                        continue;
                    }
                    let size = fragment.held_bytes();
                    match self.pending.entry(tid) {
                        std::collections::hash_map::Entry::Occupied(mut e) => {
                            let p = e.get_mut();
                            p.first_start = p.first_start.min(first_start);
                            p.last_end = p.last_end.max(last_end);
                            p.spans += n;
                            p.statuses |= statuses;
                            p.matched |= bits;
                            p.more.push(fragment);
                            p.bytes += size;
                            self.bytes += size;
                        }
                        std::collections::hash_map::Entry::Vacant(e) => {
                            self.order.push_back((now, tid));
                            e.insert(Pending {
                                first_start,
                                last_end,
                                spans: n,
                                statuses,
                                matched: bits,
                                first: fragment,
                                more: Vec::new(),
                                bytes: TRACE_OVERHEAD + size,
                            });
                            self.bytes += TRACE_OVERHEAD + size;
                        }
                    }
                    self.spans += n;
                }
            }
        }
        while self.pending.len() > self.max_traces || self.bytes > self.max_bytes {
            let Some((_, tid)) = self.order.pop_front() else {
                break;
            };
            out.absorb(self.decide(tid, now));
        }
        out
    }

    /// Decides every trace whose window has passed.
    pub fn tick(&mut self) -> Released {
        let now = self.clock.now();
        let mut out = Released::default();
        while let Some((seen, tid)) = self.order.front().copied() {
            if now.saturating_sub(seen) < self.wait {
                break;
            }
            self.order.pop_front();
            out.absorb(self.decide(tid, now));
        }
        out
    }

    /// Decides everything now (shutdown).
    pub fn flush(&mut self) -> Released {
        let now = self.clock.now();
        let mut out = Released::default();
        while let Some((_, tid)) = self.order.pop_front() {
            out.absorb(self.decide(tid, now));
        }
        out
    }

    fn decide(&mut self, tid: TraceId, now: Duration) -> Released {
        let mut out = Released::default();
        let Some(p) = self.pending.remove(&tid) else {
            return out;
        };
        self.bytes = self.bytes.saturating_sub(p.bytes);
        self.spans = self.spans.saturating_sub(p.spans);
        let summary = Summary {
            trace_id: &tid,
            p: &p,
        };
        let mut kept = None;
        for i in 0..self.policies.len() {
            let (name, node) = &self.policies[i];
            if let Some(by) = eval(node, &summary, now, &mut self.budgets) {
                kept = Some(by.unwrap_or(*name));
                break;
            }
        }
        match kept {
            Some(name) => {
                let suffix = &self.suffixes[name as usize];
                out.parts
                    .extend(std::iter::once(p.first).chain(p.more).map(|fragment| Part {
                        trace_id: tid,
                        fragment,
                        suffix: suffix.clone(),
                    }));
                out.spans_kept = p.spans;
                out.traces_kept = 1;
            }
            None => {
                out.spans_dropped = p.spans;
                out.traces_dropped = 1;
            }
        }
        self.decided.insert(tid, kept);
        self.decided_order.push_back(tid);
        while self.decided_order.len() > self.decided_cap {
            if let Some(old) = self.decided_order.pop_front() {
                self.decided.remove(&old);
            }
        }
        out
    }

    fn attribute_bits(&self, attrs: &[KeyValue]) -> u64 {
        let mut bits = 0u64;
        if self.predicates.is_empty() {
            return 0;
        }
        for kv in attrs {
            let Some(v) = kv.value.as_ref() else { continue };
            for (i, pred) in self.predicates.iter().enumerate() {
                if pred.key() == kv.key && pred.matches(v) {
                    bits |= 1 << i;
                }
            }
        }
        bits
    }
}

/// `Some(None)`: kept by this node (the caller's name applies);
/// `Some(Some(n))`: kept, named by composite sub-policy `n`; `None`: not kept.
fn eval(
    node: &Node,
    t: &Summary<'_>,
    now: Duration,
    budgets: &mut [Budget],
) -> Option<Option<u32>> {
    let yes = Some(None);
    match node {
        Node::Always => yes,
        Node::Latency { min_ns } => {
            (t.p.last_end
                .saturating_sub(t.p.first_start.min(t.p.last_end))
                >= *min_ns)
                .then_some(None)
        }
        Node::Status { mask } => (t.p.statuses & mask != 0).then_some(None),
        Node::Predicate { bit } => (t.p.matched & (1 << bit) != 0).then_some(None),
        Node::Probabilistic { threshold } => (*threshold == 0
            || (*threshold < head::SPACE && t.trace_id.randomness() >= *threshold))
            .then_some(None),
        Node::RateLimiting {
            spans_per_second,
            budget,
        } => budgets[*budget]
            .try_take(now, *spans_per_second, t.p.spans)
            .then_some(None),
        Node::SpanCount { min, max } => (t.p.spans >= *min && t.p.spans <= *max).then_some(None),
        Node::And(subs) => {
            for s in subs {
                eval(s, t, now, budgets)?;
            }
            yes
        }
        Node::Composite { subs } => {
            for s in subs {
                if eval(&s.node, t, now, budgets).is_some()
                    && budgets[s.budget].try_take(now, s.spans_per_second, t.p.spans)
                {
                    return Some(Some(s.name));
                }
            }
            None
        }
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
