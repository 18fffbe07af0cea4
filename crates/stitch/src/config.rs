//! Tuning of the stitcher.

use std::time::Duration;

use telemetry::clock::{SharedClock, SystemClock};

/// Tuning of the stitcher.
#[derive(Debug, Clone)]
pub struct StitchConfig {
    /// A trace silent this long has settled; a span after that is late.
    pub settle: Duration,
    /// Trace state not touched for this long leaves memory.
    pub idle: Duration,
    /// Spans held in trace state, at most (the least recently used traces
    /// leave first beyond it).
    pub max_spans: u64,
    /// How often summaries, edges and offsets are written.
    pub flush_every: Duration,
    /// Notes waiting for the local worker, at most; beyond it they are
    /// dropped and counted.
    pub queue_notes: usize,
    /// Notes per peer message.
    pub batch_notes: usize,
    /// The cluster whose clock is the reference for offsets (default: the
    /// first cluster name in byte order).
    pub skew_reference: Option<String>,
    pub skew: model::skew::SkewConfig,
    /// Traces that began up to this long after the worker took their shard
    /// may have been kept by the previous worker (clock skew, delivery
    /// delays): they are resumed from the store.
    pub takeover_margin: Duration,
    /// Wall time for notes' minutes, settling and takeover (tests inject
    /// a manual clock).
    pub clock: SharedClock,
}

impl Default for StitchConfig {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            max_spans: 500_000,
            flush_every: Duration::from_secs(2),
            queue_notes: 200_000,
            batch_notes: 2_000,
            skew_reference: None,
            skew: model::skew::SkewConfig::default(),
            takeover_margin: Duration::from_secs(60),
            clock: SystemClock::shared(),
        }
    }
}
