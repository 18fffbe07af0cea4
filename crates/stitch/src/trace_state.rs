//! The pure part of stitching: what one span observation changes in its
//! trace's state, which parent → child pairs it completes, and the
//! aggregates those pairs feed. No clock, no I/O: callers pass `now`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use model::{Span, SpanId, SpanKind, TraceId};
use serde::{Deserialize, Serialize};

use crate::names;

/// What stitching needs to know of one stored span (about 100 bytes on
/// the wire between gateways, whatever the span's size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub trace: TraceId,
    pub span: SpanId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SpanId>,
    pub service: String,
    pub cluster: String,
    /// Operation name (kept for the root span's summary).
    pub name: String,
    /// OTLP span kind number.
    pub kind: i32,
    pub start: u64,
    pub end: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    /// The agent's sampling policy that kept the span's trace
    /// (`meridian.sampling.policy` on its resource), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// The resource attribute agents stamp with the policy that kept a trace.
pub const POLICY_ATTRIBUTE: &str = "meridian.sampling.policy";

impl Note {
    pub fn of(span: &Span) -> Self {
        let policy = span
            .resource
            .attributes
            .iter()
            .find(|kv| kv.key == POLICY_ATTRIBUTE)
            .map(|kv| names::capped(&kv.value.to_search_string()));
        Self {
            trace: span.trace_id,
            span: span.span_id,
            parent: span.parent_span_id,
            service: names::capped(span.service_name()),
            cluster: span.cluster.as_str().to_owned(),
            name: names::capped(&span.name),
            kind: span.kind.as_i32(),
            start: span.start_unix_nano,
            end: span.end_unix_nano,
            error: span.is_error(),
            policy,
        }
    }

    fn kind(&self) -> SpanKind {
        SpanKind::from_otlp(self.kind)
    }
}

/// A stored span as stitching keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brief {
    pub span: SpanId,
    pub parent: Option<SpanId>,
    pub service: String,
    pub cluster: String,
    pub kind: SpanKind,
    pub start: u64,
    pub end: u64,
    pub error: bool,
}

impl From<&Note> for Brief {
    fn from(n: &Note) -> Self {
        Self {
            span: n.span,
            parent: n.parent,
            service: n.service.clone(),
            cluster: n.cluster.clone(),
            kind: n.kind(),
            start: n.start,
            end: n.end,
            error: n.error,
        }
    }
}

/// A parent and a child span, both seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    pub parent: Brief,
    pub child: Brief,
}

impl Pairing {
    /// Whether the pair is a call between services or clusters (an edge of
    /// the service graph); calls inside one service are not.
    pub fn is_edge(&self) -> bool {
        self.parent.service != self.child.service || self.parent.cluster != self.child.cluster
    }

    /// A client → server call crossing a cluster boundary: a clock-skew
    /// sample.
    pub fn skew_pair(&self) -> Option<model::skew::Pair> {
        let (p, c) = (&self.parent, &self.child);
        if p.cluster == c.cluster || p.kind != SpanKind::Client || c.kind != SpanKind::Server {
            return None;
        }
        Some(model::skew::Pair {
            client_cluster: model::ClusterId::new(&p.cluster).ok()?,
            server_cluster: model::ClusterId::new(&c.cluster).ok()?,
            client_start: p.start,
            client_end: p.end,
            server_start: c.start,
            server_end: c.end,
        })
    }
}

/// The root span of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootRef {
    pub service: String,
    pub operation: String,
    pub cluster: String,
}

/// Spans of a trace that a cluster held but did not send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub cluster: String,
    /// `sampling`, `buffer_overflow`, ...
    pub reason: String,
    pub spans: u64,
}

/// What the gateway knows of one trace as it arrives (persisted as a
/// `Summary` record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Spans per cluster that reported spans.
    pub clusters: BTreeMap<String, u64>,
    pub services: BTreeSet<String>,
    /// `None`: no root span yet.
    pub root: Option<RootRef>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub spans: u64,
    pub errors: u64,
    /// Spans that arrived after the trace had settled.
    pub late_spans: u64,
    /// Sampling policies that kept the trace (from agents).
    pub policies: BTreeSet<String>,
    pub dropped: Vec<Dropped>,
    /// When a span last arrived (ms, the gateway's clock).
    pub last_arrival_ms: u64,
}

/// One trace's stitching state.
///
/// A pair is counted once, when the second of its two spans is *noted*
/// here. Spans loaded from the store when a shard changes hands
/// ([`TraceState::seeded`]) are *pending*: their notes may still be on the
/// way (then they pair as usual) or were taken by the previous worker
/// (then they never come). A pending span still pending after the settle
/// time is promoted ([`TraceState::promote`]): it pairs with the spans
/// noted here, but not with other pending spans (the previous worker saw
/// those pairs).
#[derive(Debug, Clone, Default)]
pub struct TraceState {
    spans: HashMap<SpanId, (Brief, bool)>,
    /// Child ids by parent id, for every span present.
    children: HashMap<SpanId, Vec<SpanId>>,
    /// When pending spans were loaded (ms), if any are pending.
    seeded_at_ms: Option<u64>,
    pub summary: Summary,
}

impl TraceState {
    /// Starts from what the store holds of a trace that another worker
    /// kept before (a shard changing hands, or this node restarting). The
    /// arrival facts (late spans, policies, drops) come from its last
    /// summary.
    pub fn seeded(spans: &[model::Span], stored: Option<Summary>, now_ms: u64) -> Self {
        let mut t = Self::default();
        for s in spans {
            let note = Note::of(s);
            if t.spans.contains_key(&note.span) {
                continue;
            }
            t.summary_add(&note, now_ms, u64::MAX);
            t.insert(Brief::from(&note), false);
        }
        if !t.spans.is_empty() {
            t.seeded_at_ms = Some(now_ms);
        }
        if let Some(prev) = stored {
            t.summary.late_spans = prev.late_spans;
            t.summary.policies.extend(prev.policies);
            t.summary.dropped = prev.dropped;
        }
        t
    }

    fn insert(&mut self, brief: Brief, noted: bool) {
        if let Some(p) = brief.parent {
            self.children.entry(p).or_default().push(brief.span);
        }
        self.spans.insert(brief.span, (brief, noted));
    }

    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    /// The pairs of `id` with noted neighbours (for which `counts` holds).
    fn pairs_of(&self, id: SpanId, counts: impl Fn(SpanId) -> bool) -> Vec<Pairing> {
        let Some((me, _)) = self.spans.get(&id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some((parent, true)) = me.parent.and_then(|p| self.spans.get(&p))
            && counts(parent.span)
        {
            out.push(Pairing {
                parent: parent.clone(),
                child: me.clone(),
            });
        }
        for c in self.children.get(&id).into_iter().flatten() {
            if let Some((child, true)) = self.spans.get(c)
                && counts(*c)
            {
                out.push(Pairing {
                    parent: me.clone(),
                    child: child.clone(),
                });
            }
        }
        out
    }

    /// Records a span noted at `now_ms`; a trace silent for `settle_ms`
    /// has settled and a span after that is late. Returns the pairs the
    /// span completes. A span noted before (a replayed batch) changes
    /// nothing.
    pub fn observe(&mut self, note: &Note, now_ms: u64, settle_ms: u64) -> Vec<Pairing> {
        match self.spans.get_mut(&note.span) {
            Some((_, true)) => return Vec::new(),
            // Its note came after all: it pairs as usual.
            Some((_, noted)) => *noted = true,
            None => {
                self.summary_add(note, now_ms, settle_ms);
                self.insert(Brief::from(note), true);
            }
        }
        self.pairs_of(note.span, |_| true)
    }

    /// Promotes the spans pending since before `now_ms − settle_ms` (see
    /// the type's doc) and returns the pairs they complete with spans
    /// noted here.
    pub fn promote(&mut self, now_ms: u64, settle_ms: u64) -> Vec<Pairing> {
        let Some(at) = self.seeded_at_ms else {
            return Vec::new();
        };
        if now_ms.saturating_sub(at) <= settle_ms {
            return Vec::new();
        }
        self.seeded_at_ms = None;
        let promoted: Vec<SpanId> = self
            .spans
            .iter()
            .filter(|(_, (_, noted))| !noted)
            .map(|(id, _)| *id)
            .collect();
        let set: std::collections::HashSet<SpanId> = promoted.iter().copied().collect();
        let mut pairs = Vec::new();
        for id in &promoted {
            pairs.extend(self.pairs_of(*id, |other| !set.contains(&other)));
        }
        for id in &promoted {
            if let Some((_, noted)) = self.spans.get_mut(id) {
                *noted = true;
            }
        }
        pairs
    }

    /// Whether spans loaded from the store are still pending.
    pub fn has_pending(&self) -> bool {
        self.seeded_at_ms.is_some()
    }

    fn summary_add(&mut self, note: &Note, now_ms: u64, settle_ms: u64) {
        let s = &mut self.summary;
        if s.spans > 0 && now_ms.saturating_sub(s.last_arrival_ms) > settle_ms {
            s.late_spans += 1;
        }
        s.last_arrival_ms = s.last_arrival_ms.max(now_ms);
        *s.clusters.entry(note.cluster.clone()).or_default() += 1;
        s.services.insert(note.service.clone());
        s.start_ns = if s.spans == 0 {
            note.start
        } else {
            s.start_ns.min(note.start)
        };
        s.end_ns = s.end_ns.max(note.end);
        s.spans += 1;
        s.errors += u64::from(note.error);
        if let Some(p) = &note.policy {
            s.policies.insert(p.clone());
        }
        if note.parent.is_none() {
            s.root = Some(RootRef {
                service: note.service.clone(),
                operation: note.name.clone(),
                cluster: note.cluster.clone(),
            });
        }
    }

    /// Parents referenced but not seen.
    pub fn missing_parents(&self) -> Vec<SpanId> {
        let mut out: Vec<SpanId> = self
            .children
            .keys()
            .filter(|p| !self.spans.contains_key(p))
            .copied()
            .collect();
        out.sort();
        out
    }
}

/// Latency histogram: bucket `i` holds values in
/// `[2^(i/4), 2^((i+1)/4))` microseconds (relative error under 19 %),
/// 0..=127 (up to 2^32 µs, 71 minutes). Mergeable by addition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// bucket → count (sparse).
    pub buckets: BTreeMap<u8, u64>,
}

const BUCKETS: u8 = 128;

impl Histogram {
    pub fn bucket_of(micros: u64) -> u8 {
        if micros <= 1 {
            return 0;
        }
        // 4 · log2(µs), floored.
        let b = (4.0 * (micros as f64).log2()).floor();
        if b >= f64::from(BUCKETS - 1) {
            BUCKETS - 1
        } else {
            b as u8
        }
    }

    /// The lower bound of bucket `b` in microseconds.
    pub fn lower_micros(b: u8) -> f64 {
        2f64.powf(f64::from(b) / 4.0)
    }

    pub fn record(&mut self, micros: u64) {
        *self.buckets.entry(Self::bucket_of(micros)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The `q` quantile in milliseconds (the geometric middle of its
    /// bucket), `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (b, n) in &self.buckets {
            acc += n;
            if acc >= rank {
                let mid = Self::lower_micros(*b) * 2f64.powf(1.0 / 8.0);
                return Some(mid / 1_000.0);
            }
        }
        None
    }
}

/// One service edge in one minute, as stored (summed across shards at
/// query time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeAgg {
    pub calls: u64,
    pub errors: u64,
    /// Child span durations.
    pub latency: Histogram,
    /// Sum of child start − parent start, in nanoseconds (negative when the
    /// clocks disagree), over `calls`.
    pub gap_sum_ns: i128,
}

impl EdgeAgg {
    pub fn add(&mut self, p: &Pairing) {
        self.calls += 1;
        self.errors += u64::from(p.child.error);
        self.latency
            .record(p.child.end.saturating_sub(p.child.start) / 1_000);
        self.gap_sum_ns += i128::from(p.child.start) - i128::from(p.parent.start);
    }

    pub fn merge(&mut self, o: &EdgeAgg) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.latency.merge(&o.latency);
        self.gap_sum_ns += o.gap_sum_ns;
    }
}

/// `service@cluster`.
pub fn node_id(service: &str, cluster: &str) -> String {
    format!("{service}@{cluster}")
}

/// The key of an edge record: `minute|parent@cluster|child@cluster|shard`
/// (minute zero-padded so keys sort by time). Service and cluster names
/// cannot hold `|`... but a service name can: it is escaped as `%7C`.
pub fn edge_key(minute: u64, p: &Brief, c: &Brief, shard: u32) -> String {
    let esc = |s: &str| s.replace('%', "%25").replace('|', "%7C");
    format!(
        "{minute:012}|{}|{}|{shard}",
        esc(&node_id(&p.service, &p.cluster)),
        esc(&node_id(&c.service, &c.cluster))
    )
}

/// The parts of an edge key: minute, parent node, child node.
pub fn parse_edge_key(key: &str) -> Option<(u64, String, String)> {
    let mut it = key.split('|');
    let minute = it.next()?.parse().ok()?;
    let un = |s: &str| s.replace("%7C", "|").replace("%25", "%");
    let parent = un(it.next()?);
    let child = un(it.next()?);
    Some((minute, parent, child))
}

/// `service@cluster` → (service, cluster), splitting at the last `@`.
pub fn split_node(node: &str) -> (&str, &str) {
    node.rsplit_once('@').unwrap_or((node, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(span: u64, parent: Option<u64>, svc: &str, cluster: &str, kind: SpanKind) -> Note {
        Note {
            trace: TraceId::from_bytes(&[1; 16]).expect("id"),
            span: SpanId::from_bytes(&span.to_be_bytes()).expect("id"),
            parent: parent.map(|p| SpanId::from_bytes(&p.to_be_bytes()).expect("id")),
            service: svc.into(),
            cluster: cluster.into(),
            name: format!("op{span}"),
            kind: kind.as_i32(),
            start: 1_000_000 * span,
            end: 1_000_000 * span + 500_000,
            error: false,
            policy: None,
        }
    }

    #[test]
    fn pairs_form_whichever_end_arrives_first_and_once() {
        let mut t = TraceState::default();
        // Child first, then its parent, then a replay of both.
        let child = note(2, Some(1), "api", "b", SpanKind::Server);
        let parent = note(1, None, "web", "a", SpanKind::Client);
        assert!(t.observe(&child, 0, 10_000).is_empty());
        assert_eq!(t.missing_parents().len(), 1);
        let pairs = t.observe(&parent, 1, 10_000);
        assert_eq!(pairs.len(), 1);
        assert!(pairs[0].is_edge());
        assert!(pairs[0].skew_pair().is_some());
        assert!(t.missing_parents().is_empty());
        assert!(t.observe(&child, 2, 10_000).is_empty());
        assert!(t.observe(&parent, 2, 10_000).is_empty());
        // Parent first.
        let grandchild = note(3, Some(2), "api", "b", SpanKind::Internal);
        let pairs = t.observe(&grandchild, 3, 10_000);
        assert_eq!(pairs.len(), 1);
        assert!(!pairs[0].is_edge(), "a call inside one service is no edge");
        assert!(pairs[0].skew_pair().is_none());
        let s = &t.summary;
        assert_eq!(s.spans, 3);
        assert_eq!(s.clusters.get("b"), Some(&2));
        assert_eq!(s.root.as_ref().map(|r| r.operation.as_str()), Some("op1"));
        assert_eq!(s.late_spans, 0);
        // Silent for longer than the settle time: the next span is late.
        t.observe(
            &note(4, Some(1), "db", "c", SpanKind::Server),
            20_000,
            10_000,
        );
        assert_eq!(t.summary.late_spans, 1);
    }

    #[test]
    fn a_trace_changing_hands_counts_each_pair_once() {
        let p = note(1, None, "web", "a", SpanKind::Client);
        let c1 = note(2, Some(1), "api", "b", SpanKind::Server);
        let c2 = note(3, Some(1), "db", "c", SpanKind::Server);
        let to_span = |n: &Note| {
            let mut s = store::testsuite::SpanBuilder::new(1, 1, &n.service)
                .cluster(&n.cluster)
                .build();
            s.trace_id = n.trace;
            s.span_id = n.span;
            s.parent_span_id = n.parent;
            s
        };
        // P was noted by the previous worker; C1 is stored and its note is
        // on its way here; C2 comes later.
        let mut t = TraceState::seeded(&[to_span(&p), to_span(&c1)], None, 0);
        assert!(t.has_pending());
        assert_eq!(t.summary.spans, 2);
        assert!(t.observe(&c1, 1, 10_000).is_empty(), "P is still pending");
        assert!(t.observe(&c2, 2, 10_000).is_empty());
        assert!(t.promote(5_000, 10_000).is_empty(), "not settled yet");
        let pairs = t.promote(20_000, 10_000);
        assert_eq!(pairs.len(), 2, "P pairs with C1 and C2 once each");
        assert!(!t.has_pending());
        assert!(t.promote(40_000, 10_000).is_empty());
        assert_eq!(t.summary.spans, 3);

        // Both ends pending, both notes arrive: one pair.
        let mut t = TraceState::seeded(&[to_span(&p), to_span(&c1)], None, 0);
        assert!(t.observe(&p, 1, 10_000).is_empty());
        assert_eq!(t.observe(&c1, 2, 10_000).len(), 1);
        assert!(t.promote(20_000, 10_000).is_empty());
        // Both ends pending, no note arrives: the previous worker had both.
        let mut t = TraceState::seeded(&[to_span(&p), to_span(&c1)], None, 0);
        assert!(t.promote(20_000, 10_000).is_empty());
    }

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(ms * 1000);
        }
        let p50 = h.quantile_ms(0.5).expect("p50");
        let p99 = h.quantile_ms(0.99).expect("p99");
        assert!((p50 - 500.0).abs() / 500.0 < 0.2, "p50 {p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.2, "p99 {p99}");
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
        assert_eq!(Histogram::bucket_of(u64::MAX), 127);
    }

    #[test]
    fn edge_keys_round_trip_odd_names() {
        let p = Brief::from(&note(1, None, "we|b%", "a", SpanKind::Client));
        let c = Brief::from(&note(2, Some(1), "api", "b", SpanKind::Server));
        let key = edge_key(42, &p, &c, 3);
        assert_eq!(
            parse_edge_key(&key),
            Some((42, "we|b%@a".to_owned(), "api@b".to_owned()))
        );
        assert_eq!(split_node("a@b@c"), ("a@b", "c"));
    }
}
