//! Gateway counters (names in `telemetry::metrics`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunResult {
    result: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct GatewayMetrics {
    batches: Family<Outcome, Counter>,
    stored: Counter,
    duplicates: Counter,
    refused: Family<Reason, Counter>,
    foreign_cluster_spans: Counter,
    retention_runs: Family<RunResult, Counter>,
    retention_spans_deleted: Counter,
    retention_partitions_dropped: Counter,
    control_streams: Gauge,
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
        registry.register(
            "meridian_gateway_spans_foreign_cluster_refused",
            "Spans refused because their resource claims a cluster other than the sender's certificate (the rest of their batch is stored)",
            m.foreign_cluster_spans.clone(),
        );
        registry.register(
            names::GATEWAY_RETENTION_RUNS,
            "Retention passes, by result (ok, error)",
            m.retention_runs.clone(),
        );
        registry.register(
            names::GATEWAY_RETENTION_SPANS_DELETED,
            "Spans retention deleted row by row",
            m.retention_spans_deleted.clone(),
        );
        registry.register(
            names::GATEWAY_RETENTION_PARTITIONS_DROPPED,
            "Whole time partitions retention dropped",
            m.retention_partitions_dropped.clone(),
        );
        registry.register(
            names::GATEWAY_CONTROL_STREAMS,
            "Agents' federation Control streams open on this gateway",
            m.control_streams.clone(),
        );
        m
    }

    /// A Control stream opened (`1`) or ended (`-1`).
    pub fn control_streams(&self, delta: i64) {
        self.control_streams.inc_by(delta);
    }

    /// Control streams open now.
    pub fn active_control_streams(&self) -> i64 {
        self.control_streams.get()
    }

    /// Counts a retention pass: `Some(report)` when it succeeded.
    pub fn retention_run(&self, report: Option<&store::RetentionReport>) {
        let result = if report.is_some() { "ok" } else { "error" };
        self.retention_runs
            .get_or_create(&RunResult { result })
            .inc();
        if let Some(r) = report {
            self.retention_spans_deleted.inc_by(r.spans_deleted);
            self.retention_partitions_dropped
                .inc_by(r.partitions_dropped);
        }
    }

    /// Retention passes with `result` ("ok" or "error").
    pub fn retention_runs(&self, result: &'static str) -> u64 {
        self.retention_runs
            .get_or_create(&RunResult { result })
            .get()
    }

    /// (spans deleted, partitions dropped) by retention so far.
    pub fn retention_removed(&self) -> (u64, u64) {
        (
            self.retention_spans_deleted.get(),
            self.retention_partitions_dropped.get(),
        )
    }

    pub fn batch(&self, outcome: &'static str) {
        self.batches.get_or_create(&Outcome { outcome }).inc();
    }

    /// Federation batches with `outcome` so far.
    pub fn batches(&self, outcome: &'static str) -> u64 {
        self.batches.get_or_create(&Outcome { outcome }).get()
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

    pub fn foreign_cluster_spans(&self, n: u64) {
        self.foreign_cluster_spans.inc_by(n);
    }

    /// Spans refused for claiming another cluster so far.
    pub fn foreign_cluster_refusals(&self) -> u64 {
        self.foreign_cluster_spans.get()
    }

    pub fn spans_stored(&self) -> u64 {
        self.stored.get()
    }
}
