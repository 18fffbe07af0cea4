//! The receivers' counters on `/metrics`, by protocol and outcome.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use telemetry::metrics as names;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

/// Receiver counters. Label values are fixed strings: bounded cardinality.
#[derive(Debug, Clone, Default)]
pub struct ReceiverMetrics {
    requests: Family<RequestLabels, Counter>,
    accepted: Family<ProtocolLabels, Counter>,
    refused: Family<ProtocolLabels, Counter>,
}

impl ReceiverMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            names::RECEIVER_REQUESTS,
            "Requests received, by protocol and outcome (ok, partial, empty, rejected, refused_retryable)",
            m.requests.clone(),
        );
        registry.register(
            names::RECEIVER_SPANS_ACCEPTED,
            "Spans accepted by receivers",
            m.accepted.clone(),
        );
        registry.register(
            names::RECEIVER_SPANS_REFUSED,
            "Spans refused by receivers (invalid, or refused under backpressure)",
            m.refused.clone(),
        );
        m
    }

    pub(crate) fn request(&self, protocol: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { protocol, outcome })
            .inc();
    }

    pub(crate) fn accepted(&self, protocol: &'static str, n: u64) {
        if n > 0 {
            self.accepted
                .get_or_create(&ProtocolLabels { protocol })
                .inc_by(n);
        }
    }

    pub(crate) fn refused(&self, protocol: &'static str, n: u64) {
        if n > 0 {
            self.refused
                .get_or_create(&ProtocolLabels { protocol })
                .inc_by(n);
        }
    }

    /// Requests seen with `outcome` for `protocol` (for tests and status pages).
    pub fn requests_with(&self, protocol: &'static str, outcome: &'static str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels { protocol, outcome })
            .get()
    }
}
