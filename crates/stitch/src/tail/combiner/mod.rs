//! The cross-cluster tail decision for the traces of the shards this node
//! works on: pure (time passed in), no I/O; the shell in [`super::worker`]
//! moves messages.
//!
//! - A trace opens with its first digest; digests from every cluster are
//!   combined (one per cluster, a repeated one replaces the earlier).
//! - **Keep if any**: a digest whose cluster kept the trace locally decides
//!   it at once: keep, named `<policy>@<cluster>`.
//! - Otherwise, `window` after the first digest, the gateway-side policy
//!   (the tail section of the cluster policy `*`, if any) judges the
//!   combined facts (earliest start, latest end, total spans, every status;
//!   attribute rules cannot match a digest) — keep by its name, else drop.
//! - Decided verdicts stay in a bounded cache with a TTL: a late digest is
//!   answered at once with the stored verdict. A late *keep* upgrades a
//!   stored drop (later reporters then keep theirs; clusters that already
//!   dropped cannot undo it: the partial window, see ARCHITECTURE.md).
//! - At most `max_open` traces are open; beyond, the oldest is decided
//!   early with what arrived.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use model::{TraceId, sampling::TailConfig};
use sampling::tail::{Judge, TraceFacts};

use control_state::NodeId;

/// Bounds and timing of a combiner.
#[derive(Debug, Clone)]
pub struct CombinerConfig {
    /// How long after a trace's first digest its drop is decided.
    pub window: Duration,
    /// Traces open at most; beyond, the oldest is decided early.
    pub max_open: usize,
    /// Decided verdicts remembered (late digests), at most this many …
    pub decided_max: u64,
    /// … for this long.
    pub decided_ttl: Duration,
}

/// What one cluster reported of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDigest {
    pub cluster: String,
    pub statuses: u8,
    pub first_start: u64,
    pub last_end: u64,
    pub spans: u64,
    pub bytes: u64,
    /// The local policy that kept it; `None`: a local drop.
    pub kept_by: Option<String>,
}

/// A verdict: `Some(policy)` keeps, `None` drops.
pub type Verdict = Option<Arc<str>>;

/// Why a trace was decided as it was (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// A cluster kept it locally.
    Cluster,
    /// The gateway-side policy kept it.
    GatewayPolicy,
    /// Nothing kept it.
    None,
}

/// A trace decided now, and the nodes that relayed digests for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub trace_id: TraceId,
    pub verdict: Verdict,
    pub by: DecidedBy,
    pub relays: BTreeSet<NodeId>,
}

/// The result of offering a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// Waiting for the window.
    Open,
    /// Decided by this digest (or earlier): answer every relay.
    Decided(Decision),
    /// Decided before; only the sender needs the stored verdict.
    Late(Verdict),
}

#[derive(Debug)]
struct Open {
    opened: Instant,
    clusters: BTreeMap<String, ClusterDigest>,
    relays: BTreeSet<NodeId>,
}

/// Combines digests into verdicts.
pub struct Combiner {
    cfg: CombinerConfig,
    origin: Instant,
    open: HashMap<TraceId, Open>,
    order: VecDeque<(Instant, TraceId)>,
    decided: moka::sync::Cache<TraceId, Verdict>,
    policy: Option<(TailConfig, Judge)>,
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner")
            .field("open", &self.open.len())
            .field(
                "policy",
                &self.policy.as_ref().map(|(c, _)| c.policies.len()),
            )
            .finish_non_exhaustive()
    }
}

impl Combiner {
    pub fn new(cfg: CombinerConfig, now: Instant) -> Self {
        let decided = moka::sync::Cache::builder()
            .max_capacity(cfg.decided_max)
            .time_to_live(cfg.decided_ttl)
            .build();
        Self {
            cfg,
            origin: now,
            open: HashMap::new(),
            order: VecDeque::new(),
            decided,
            policy: None,
        }
    }

    /// Traces waiting for their window.
    pub fn open_traces(&self) -> usize {
        self.open.len()
    }

    /// Follows the gateway-side policy (recompiled only when it changed).
    /// A policy that does not compile is ignored (keep-if-any only) and
    /// reported.
    pub fn set_policy(
        &mut self,
        tail: Option<&TailConfig>,
    ) -> Result<(), sampling::tail::TailError> {
        match tail {
            None => self.policy = None,
            Some(t) if self.policy.as_ref().is_some_and(|(c, _)| c == t) => {}
            Some(t) => match Judge::new(t) {
                Ok(j) => self.policy = Some((t.clone(), j)),
                Err(e) => {
                    self.policy = None;
                    return Err(e);
                }
            },
        }
        Ok(())
    }

    /// Takes one cluster's digest, relayed by node `from`. Early decisions
    /// forced by the `max_open` cap are appended to `forced`.
    pub fn offer(
        &mut self,
        from: NodeId,
        trace_id: TraceId,
        d: ClusterDigest,
        now: Instant,
        forced: &mut Vec<Decision>,
    ) -> Offered {
        if let Some(stored) = self.decided.get(&trace_id) {
            if stored.is_none()
                && let Some(policy) = &d.kept_by
            {
                // A late keep: later reporters keep theirs too.
                let v: Verdict = Some(Arc::from(format!("{policy}@{}", d.cluster)));
                self.decided.insert(trace_id, v.clone());
                return Offered::Late(v);
            }
            return Offered::Late(stored);
        }
        let keep_now = d
            .kept_by
            .as_ref()
            .map(|p| Some(Arc::<str>::from(format!("{p}@{}", d.cluster))));
        let open = self.open.entry(trace_id).or_insert_with(|| {
            self.order.push_back((now, trace_id));
            Open {
                opened: now,
                clusters: BTreeMap::new(),
                relays: BTreeSet::new(),
            }
        });
        open.relays.insert(from);
        open.clusters.insert(d.cluster.clone(), d);
        if let Some(v) = keep_now {
            let relays = self
                .open
                .remove(&trace_id)
                .map(|o| o.relays)
                .unwrap_or_default();
            self.decided.insert(trace_id, v.clone());
            return Offered::Decided(Decision {
                trace_id,
                verdict: v,
                by: DecidedBy::Cluster,
                relays,
            });
        }
        while self.open.len() > self.cfg.max_open {
            let Some((opened, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.is_current(oldest, opened)
                && let Some(d) = self.close(oldest, now)
            {
                forced.push(d);
            }
        }
        if self.open.contains_key(&trace_id) {
            Offered::Open
        } else {
            // Decided early by the cap just now (it was the oldest).
            Offered::Late(self.decided.get(&trace_id).flatten())
        }
    }

    /// Decides every trace whose window passed.
    pub fn expire(&mut self, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        while let Some((opened, tid)) = self.order.front().copied() {
            if now.saturating_duration_since(opened) < self.cfg.window {
                break;
            }
            self.order.pop_front();
            if self.is_current(tid, opened)
                && let Some(d) = self.close(tid, now)
            {
                out.push(d);
            }
        }
        out
    }

    /// `order` keeps entries of traces decided early; they are skipped.
    fn is_current(&self, tid: TraceId, opened: Instant) -> bool {
        self.open.get(&tid).is_some_and(|o| o.opened == opened)
    }

    fn close(&mut self, tid: TraceId, now: Instant) -> Option<Decision> {
        let open = self.open.remove(&tid)?;
        let mut facts = TraceFacts {
            trace_id: tid,
            first_start: u64::MAX,
            last_end: 0,
            spans: 0,
            statuses: 0,
            matched: 0,
        };
        for d in open.clusters.values() {
            facts.first_start = facts.first_start.min(d.first_start);
            facts.last_end = facts.last_end.max(d.last_end);
            facts.spans = facts.spans.saturating_add(d.spans);
            facts.statuses |= d.statuses;
        }
        facts.first_start = facts.first_start.min(facts.last_end);
        let since = now.saturating_duration_since(self.origin);
        let (verdict, by) = match &mut self.policy {
            Some((_, judge)) => match judge.decide(&facts, since) {
                Some(i) => (
                    Some(Arc::<str>::from(judge.name(i))),
                    DecidedBy::GatewayPolicy,
                ),
                None => (None, DecidedBy::None),
            },
            None => (None, DecidedBy::None),
        };
        self.decided.insert(tid, verdict.clone());
        Some(Decision {
            trace_id: tid,
            verdict,
            by,
            relays: open.relays,
        })
    }
}

#[cfg(test)]
mod tests;
