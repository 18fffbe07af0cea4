//! Cross-cluster tail counters on the gateway (names in
//! `telemetry::metrics`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use telemetry::metrics as names;

use super::combiner::DecidedBy;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Decided {
    verdict: &'static str,
    by: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct TailMetrics {
    digests: Family<Outcome, Counter>,
    digest_bytes: Counter,
    decisions: Family<Decided, Counter>,
    late: Counter,
    retries: Counter,
    undelivered: Family<Reason, Counter>,
    open: Gauge,
}

impl TailMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            names::GATEWAY_TAIL_DIGESTS,
            "Trace digests received, by outcome (relayed, invalid, queue_full, unroutable, refused)",
            m.digests.clone(),
        );
        r.register(
            names::GATEWAY_TAIL_DIGEST_BYTES,
            "Encoded bytes of digest batches received from agents",
            m.digest_bytes.clone(),
        );
        r.register(
            names::GATEWAY_TAIL_DECISIONS,
            "Cross-cluster tail decisions made by this node, by verdict and by (cluster, gateway_policy, none)",
            m.decisions.clone(),
        );
        r.register(
            names::GATEWAY_TAIL_LATE_DIGESTS,
            "Digests for traces already decided, answered from the verdict cache",
            m.late.clone(),
        );
        r.register(
            names::GATEWAY_TAIL_RELAY_RETRIES,
            "Digests relayed again to a shard's worker (no verdict yet, or the worker changed)",
            m.retries.clone(),
        );
        r.register(
            names::GATEWAY_TAIL_VERDICTS_UNDELIVERED,
            "Verdicts not delivered, by reason (stream_full, no_stream, peer_unreachable, outbox_full)",
            m.undelivered.clone(),
        );
        r.register(
            names::GATEWAY_TAIL_OPEN_TRACES,
            "Traces open in this node's decision window",
            m.open.clone(),
        );
        m
    }

    pub fn digests(&self, outcome: &'static str, n: usize) {
        self.digests
            .get_or_create(&Outcome { outcome })
            .inc_by(n as u64);
    }

    pub fn digest_count(&self, outcome: &'static str) -> u64 {
        self.digests.get_or_create(&Outcome { outcome }).get()
    }

    pub fn bytes(&self, n: usize) {
        self.digest_bytes.inc_by(n as u64);
    }

    pub fn digest_bytes(&self) -> u64 {
        self.digest_bytes.get()
    }

    pub fn decided(&self, keep: bool, by: DecidedBy) {
        let by = match by {
            DecidedBy::Cluster => "cluster",
            DecidedBy::GatewayPolicy => "gateway_policy",
            DecidedBy::None => "none",
        };
        let verdict = if keep { "keep" } else { "drop" };
        self.decisions.get_or_create(&Decided { verdict, by }).inc();
    }

    /// Decisions made on this node with `verdict` (keep, drop), any reason.
    pub fn decisions(&self, verdict: &'static str) -> u64 {
        ["cluster", "gateway_policy", "none"]
            .iter()
            .map(|by| self.decisions.get_or_create(&Decided { verdict, by }).get())
            .sum()
    }

    pub fn late(&self, n: u64) {
        self.late.inc_by(n);
    }

    pub fn retried(&self, n: usize) {
        self.retries.inc_by(n as u64);
    }

    pub fn retries(&self) -> u64 {
        self.retries.get()
    }

    pub fn undelivered(&self, reason: &'static str, n: usize) {
        self.undelivered
            .get_or_create(&Reason { reason })
            .inc_by(n as u64);
    }

    pub fn set_open(&self, n: usize) {
        self.open.set(n as i64);
    }
}
