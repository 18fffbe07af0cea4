//! RED metrics (rate, errors, duration) as the agent aggregates them per
//! window and the gateway stores and rolls them up: a series key, its
//! aggregate (count, errors, duration sum, [`Sketch`], exemplars), and the
//! pure merge they all rely on.

mod selector;
mod sketch;

use serde::{Deserialize, Serialize};

pub use selector::Selector;
pub use sketch::{MAX_BINS, MIN_NS, RELATIVE_ACCURACY, Sketch, bin_index, bin_range, bin_value};

/// The agent's aggregation window.
pub const WINDOW_MS: i64 = 10_000;
/// Exemplars kept per series and window.
pub const MAX_EXEMPLARS: usize = 4;
/// The label value series beyond a cardinality limit are folded into.
pub const OTHER: &str = "other";

/// What a series is counted by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub cluster: String,
    pub service: String,
    pub operation: String,
    /// `server`, `client`, `producer`, `consumer`, `internal`, `unspecified`.
    pub span_kind: String,
    /// `OK`, `ERROR`, `UNSET`.
    pub status_code: String,
}

/// A trace that explains a series: an error or a slow call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemplar {
    /// Lowercase hex.
    pub trace_id: String,
    pub duration_ns: u64,
    pub error: bool,
}

/// A series' figures over some interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    pub count: u64,
    pub errors: u64,
    pub duration_sum_ns: u64,
    pub sketch: Sketch,
    pub exemplars: Vec<Exemplar>,
}

/// Whether a span kind / status label counts as an error.
pub fn is_error(status_code: &str) -> bool {
    status_code == "ERROR"
}

impl Aggregate {
    pub fn observe(&mut self, duration_ns: u64, error: bool, trace_id: Option<&[u8]>) {
        self.count += 1;
        self.errors += u64::from(error);
        self.duration_sum_ns = self.duration_sum_ns.saturating_add(duration_ns);
        self.sketch.insert(duration_ns);
        if let Some(id) = trace_id {
            self.offer(error, duration_ns, || encode_hex(id));
        }
    }

    /// Keeps the most telling exemplars: errors first, then the slowest.
    /// The trace id is only rendered when the exemplar is kept.
    fn offer(&mut self, error: bool, duration_ns: u64, trace_id: impl FnOnce() -> String) {
        let e = |trace_id| Exemplar {
            trace_id,
            duration_ns,
            error,
        };
        if self.exemplars.len() < MAX_EXEMPLARS {
            self.exemplars.push(e(trace_id()));
            return;
        }
        let weakest = self
            .exemplars
            .iter()
            .enumerate()
            .min_by_key(|(_, x)| (x.error, x.duration_ns))
            .map(|(i, x)| (i, (x.error, x.duration_ns)));
        if let Some((i, w)) = weakest
            && (error, duration_ns) > w
        {
            self.exemplars[i] = e(trace_id());
        }
    }

    pub fn merge(&mut self, other: &Aggregate) {
        self.count = self.count.saturating_add(other.count);
        self.errors = self.errors.saturating_add(other.errors);
        self.duration_sum_ns = self.duration_sum_ns.saturating_add(other.duration_sum_ns);
        self.sketch.merge(&other.sketch);
        for e in &other.exemplars {
            if !self.exemplars.iter().any(|x| x.trace_id == e.trace_id) {
                self.offer(e.error, e.duration_ns, || e.trace_id.clone());
            }
        }
    }

    /// Errors over calls (0 when there were none).
    pub fn error_ratio(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 / self.count as f64
        }
    }

    /// The `q` latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q).map(|ns| ns / 1e6)
    }
}

fn encode_hex(id: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(id.len() * 2);
    for b in id {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// The start of the window of `WINDOW_MS` holding `time_ms`.
pub fn window_start(time_ms: i64, width_ms: i64) -> i64 {
    time_ms.div_euclid(width_ms) * width_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_and_keeps_telling_exemplars() {
        let mut a = Aggregate::default();
        for i in 0..6u8 {
            a.observe(1_000_000 * u64::from(i + 1), i == 1, Some(&[i; 16]));
        }
        assert_eq!(a.exemplars.len(), MAX_EXEMPLARS);
        assert!(a.exemplars.iter().any(|e| e.error));
        assert!(a.exemplars.iter().any(|e| e.duration_ns == 6_000_000));
        let mut b = Aggregate::default();
        b.observe(5_000, true, None);
        a.merge(&b);
        assert_eq!((a.count, a.errors), (7, 2));
        assert_eq!(a.sketch.count(), 7);
        assert!((a.error_ratio() - 2.0 / 7.0).abs() < 1e-12);
        assert_eq!(window_start(19_999, WINDOW_MS), 10_000);
        assert_eq!(window_start(-1, WINDOW_MS), -10_000);
    }
}
