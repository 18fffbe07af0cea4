//! The forwarder's counters on `/metrics`, one set per destination.

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use telemetry::metrics as names;

/// Forwarder counters, shared with `/metrics` and tests.
#[derive(Debug, Clone, Default)]
pub struct ForwardStats {
    forwarded: Counter,
    acked: Counter,
    dropped: Counter,
    rejected: Counter,
    retries: Counter,
    up: Gauge,
    payload_bytes: Counter,
    raw_bytes: Counter,
    columnar: Counter,
}

impl ForwardStats {
    pub fn register(registry: &mut Registry) -> Self {
        let s = Self::default();
        registry.register(
            "meridian_agent_spans_forwarded",
            "Spans sent to the destination (retries count again)",
            s.forwarded.clone(),
        );
        registry.register(
            names::AGENT_SPANS_ACKED,
            "Spans the gateway acknowledged as committed",
            s.acked.clone(),
        );
        registry.register(
            names::AGENT_SPANS_DROPPED_PERMANENT,
            "Spans dropped because the gateway refused them permanently",
            s.dropped.clone(),
        );
        registry.register(
            "meridian_agent_spans_rejected_by_destination",
            "Spans the destination refused inside a batch it acknowledged (invalid, or claiming another cluster)",
            s.rejected.clone(),
        );
        registry.register(
            names::AGENT_FORWARD_RETRIES,
            "Forward attempts that failed and were retried",
            s.retries.clone(),
        );
        registry.register(
            "meridian_agent_forward_payload_bytes",
            "Compressed payload bytes of the batches sent (retries count again)",
            s.payload_bytes.clone(),
        );
        registry.register(
            "meridian_agent_forward_uncompressed_bytes",
            "OTLP bytes of the batches sent before compression (retries count again)",
            s.raw_bytes.clone(),
        );
        registry.register(
            "meridian_agent_forward_columnar_batches",
            "Batches sent in the columnar encoding (COMPRESSION_OTLP_COLUMNS_ZSTD)",
            s.columnar.clone(),
        );
        registry.register(
            names::AGENT_GATEWAY_UP,
            "1 when the last forward reached a gateway",
            s.up.clone(),
        );
        s
    }

    pub(crate) fn forwarded(&self, n: u64) {
        self.forwarded.inc_by(n);
    }
    pub(crate) fn acked(&self, n: u64) {
        self.acked.inc_by(n);
    }
    pub(crate) fn dropped(&self, n: u64) {
        self.dropped.inc_by(n);
    }
    pub(crate) fn rejected(&self, n: u64) {
        self.rejected.inc_by(n);
    }
    pub(crate) fn columnar_batch(&self) {
        self.columnar.inc();
    }
    pub(crate) fn payload(&self, compressed: u64, uncompressed: u64) {
        self.payload_bytes.inc_by(compressed);
        self.raw_bytes.inc_by(uncompressed);
    }
    pub(crate) fn retry(&self) {
        self.retries.inc();
    }
    pub(crate) fn gateway_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    pub fn forwarded_spans(&self) -> u64 {
        self.forwarded.get()
    }
    pub fn acked_spans(&self) -> u64 {
        self.acked.get()
    }
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.get()
    }
    pub fn rejected_spans(&self) -> u64 {
        self.rejected.get()
    }
    /// (compressed, uncompressed) payload bytes sent.
    pub fn payload_bytes(&self) -> (u64, u64) {
        (self.payload_bytes.get(), self.raw_bytes.get())
    }
    pub fn retries(&self) -> u64 {
        self.retries.get()
    }
}
