//! The stitcher's counters (`meridian_gateway_stitch_*`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The stitcher's counters.
#[derive(Debug, Clone, Default)]
pub struct StitchMetrics {
    pub(crate) notes: Counter,
    pub(crate) pairs: Counter,
    pub(crate) seeded: Counter,
    dropped: Family<Reason, Counter>,
    pub(crate) flush_errors: Counter,
}

impl StitchMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "meridian_gateway_stitch_notes",
            "Span notes processed by this node's stitching worker",
            m.notes.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_traces_resumed",
            "Traces loaded from the store to resume stitching them (a shard changed hands)",
            m.seeded.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_pairs",
            "Parent-child span pairs formed by stitching",
            m.pairs.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_notes_dropped",
            "Span notes not stitched, by reason (queue_full, peer_unreachable, no_worker)",
            m.dropped.clone(),
        );
        registry.register(
            "meridian_gateway_stitch_flush_errors",
            "Stitching flushes the store refused (retried at the next flush)",
            m.flush_errors.clone(),
        );
        m
    }

    pub(crate) fn drop_notes(&self, reason: &'static str, n: usize) {
        self.dropped
            .get_or_create(&Reason { reason })
            .inc_by(n as u64);
    }

    /// Notes dropped for `reason`.
    pub fn dropped(&self, reason: &'static str) -> u64 {
        self.dropped.get_or_create(&Reason { reason }).get()
    }

    pub fn notes(&self) -> u64 {
        self.notes.get()
    }
}
