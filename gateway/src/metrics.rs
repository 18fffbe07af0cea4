//! Gateway counters (names in `telemetry::metrics`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use telemetry::metrics as names;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct GatewayMetrics {
    batches: Family<Outcome, Counter>,
    stored: Counter,
    duplicates: Counter,
    refused: Family<Reason, Counter>,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            names::GATEWAY_FORWARD_BATCHES,
            "Federation batches received, by outcome",
            m.batches.clone(),
        );
        registry.register(
            names::GATEWAY_SPANS_STORED,
            "Spans newly written to the store",
            m.stored.clone(),
        );
        registry.register(
            names::GATEWAY_SPANS_DUPLICATE,
            "Spans received again (replays) and not stored twice",
            m.duplicates.clone(),
        );
        registry.register(
            names::GATEWAY_IDENTITY_REFUSED,
            "Connections or batches refused for identity reasons (tls, no_identity, cluster_mismatch, node_cert)",
            m.refused.clone(),
        );
        m
    }

    pub fn batch(&self, outcome: &'static str) {
        self.batches.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn stored(&self, inserted: u64, duplicates: u64) {
        self.stored.inc_by(inserted);
        self.duplicates.inc_by(duplicates);
    }

    pub fn identity_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    pub fn identity_refusals(&self, reason: &'static str) -> u64 {
        self.refused.get_or_create(&Reason { reason }).get()
    }

    pub fn spans_stored(&self) -> u64 {
        self.stored.get()
    }
}
