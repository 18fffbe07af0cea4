//! The sampling stage's counters on `/metrics`.

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

/// Sampling counters on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SamplingStats {
    pub head_sampled_out: Counter,
    /// Σ adjusted count (1/p) of spans head sampling kept: an unbiased
    /// estimate of the spans offered.
    pub head_adjusted: Counter<f64, std::sync::atomic::AtomicU64>,
    pub tail_sampled_out: Counter,
    pub tail_kept: Counter,
    pub tail_traces_kept: Counter,
    pub tail_traces_dropped: Counter,
    pub tail_held_spans: Gauge,
    pub tail_held_bytes: Gauge,
    /// Kept spans lost because the buffer refused them after a decision.
    pub tail_buffer_refused: Counter,
    /// Spans refused at receipt for claiming another cluster.
    pub foreign_cluster_refused: Counter,
}

impl SamplingStats {
    pub fn register(r: &mut Registry) -> Self {
        let s = Self::default();
        r.register(
            "meridian_agent_spans_head_sampled_out",
            "Spans dropped by head sampling",
            s.head_sampled_out.clone(),
        );
        r.register(
            "meridian_agent_head_adjusted_spans",
            "Sum of the adjusted counts (1/p) of spans kept by head sampling",
            s.head_adjusted.clone(),
        );
        r.register(
            "meridian_agent_spans_tail_sampled_out",
            "Spans dropped by tail sampling",
            s.tail_sampled_out.clone(),
        );
        r.register(
            "meridian_agent_spans_tail_kept",
            "Spans kept by tail sampling",
            s.tail_kept.clone(),
        );
        r.register(
            "meridian_agent_tail_traces_kept",
            "Traces kept by tail sampling",
            s.tail_traces_kept.clone(),
        );
        r.register(
            "meridian_agent_tail_traces_dropped",
            "Traces dropped by tail sampling",
            s.tail_traces_dropped.clone(),
        );
        r.register(
            "meridian_agent_tail_held_spans",
            "Spans waiting for a tail decision",
            s.tail_held_spans.clone(),
        );
        r.register(
            "meridian_agent_tail_held_bytes",
            "Bytes waiting for a tail decision",
            s.tail_held_bytes.clone(),
        );
        r.register(
            "meridian_agent_spans_tail_buffer_refused",
            "Spans a tail decision kept but the full buffer refused",
            s.tail_buffer_refused.clone(),
        );
        r.register(
            "meridian_agent_spans_foreign_cluster_refused",
            "Spans refused at receipt because their resource claims another cluster (k8s.cluster.name)",
            s.foreign_cluster_refused.clone(),
        );
        s
    }
}
