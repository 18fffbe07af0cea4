//! Spans per second over a sliding minute: six 10 s buckets keyed by
//! `now_ms / 10_000`. A bucket older than the window is reused (reset) when
//! its slot comes round again.

/// Width of one bucket.
const BUCKET_MS: u64 = 10_000;
/// Buckets in the window (6 × 10 s = one minute).
const BUCKETS: usize = 6;

#[derive(Debug, Clone, Default)]
pub struct SpanRate {
    /// (bucket number, spans) per slot `bucket % BUCKETS`.
    slots: [(u64, u64); BUCKETS],
    /// When the first spans were counted (a young agent's rate is over
    /// its age, not a whole minute).
    first_ms: Option<u64>,
}

impl SpanRate {
    pub fn add(&mut self, spans: u64, now_ms: u64) {
        let b = now_ms / BUCKET_MS;
        let slot = &mut self.slots[(b % BUCKETS as u64) as usize];
        if slot.0 != b {
            *slot = (b, 0);
        }
        slot.1 = slot.1.saturating_add(spans);
        self.first_ms.get_or_insert(now_ms);
    }

    /// Spans per second over the buckets of the last minute. The divisor
    /// is the window (one minute), or the time since the first spans when
    /// shorter, but at least one bucket.
    pub fn per_sec(&self, now_ms: u64) -> f64 {
        let Some(first) = self.first_ms else {
            return 0.0;
        };
        let b = now_ms / BUCKET_MS;
        let oldest = b.saturating_sub(BUCKETS as u64 - 1);
        let spans: u64 = self
            .slots
            .iter()
            .filter(|(n, _)| *n >= oldest && *n <= b)
            .map(|(_, s)| *s)
            .sum();
        let window = (BUCKETS as u64 * BUCKET_MS)
            .min(now_ms.saturating_sub(first))
            .max(BUCKET_MS);
        spans as f64 * 1000.0 / window as f64
    }
}
