//! A mergeable latency sketch with a relative-error guarantee.
//!
//! Durations (nanoseconds) fall in logarithmic bins: bin `i` holds the
//! values in `(γ^(i-1), γ^i]` with `γ = (1 + α) / (1 − α)` and α =
//! [`RELATIVE_ACCURACY`] (1 %). A quantile is answered with the bin's
//! representative `2γ^i / (γ + 1)`, which is within α of *every* value of
//! the bin, so the answer is within 1 % of the exact order statistic (the
//! value of rank `max(1, ⌈q·n⌉)`) — after any number of merges, because
//! merging adds bin counts and loses nothing. Values at or below
//! [`MIN_NS`] (1 µs) share one "zero" bin answered as 0 (absolute error
//! below 1 µs). Bins are sparse; the index range is bounded by the `u64`
//! range (|i| ≤ ≈ 2,200), so a sketch never exceeds that many bins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The guaranteed relative error of a quantile (α).
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Durations at or below this many nanoseconds are counted in the zero bin.
pub const MIN_NS: u64 = 1_000;
/// Bins a sketch may hold. Durations in `(MIN_NS, u64::MAX]` fall in
/// fewer than 1,900 bins, so a sketch from the wire with more (or with an
/// index outside [`bin_range`]) is invalid.
pub const MAX_BINS: usize = 2_048;

/// The bin indexes a duration above [`MIN_NS`] can have.
pub fn bin_range() -> std::ops::RangeInclusive<i32> {
    bin_index(MIN_NS + 1)..=bin_index(u64::MAX)
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// The bin of a duration above [`MIN_NS`].
pub fn bin_index(ns: u64) -> i32 {
    let i = ((ns as f64).ln() / gamma().ln()).ceil();
    i as i32
}

/// The value a bin stands for (nanoseconds).
pub fn bin_value(index: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(index) / (g + 1.0)
}

/// Counts of durations by bin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sketch {
    pub zero: u64,
    pub bins: BTreeMap<i32, u64>,
}

impl Sketch {
    pub fn insert(&mut self, ns: u64) {
        self.insert_n(ns, 1);
    }

    pub fn insert_n(&mut self, ns: u64, n: u64) {
        if ns <= MIN_NS {
            self.zero = self.zero.saturating_add(n);
        } else {
            let c = self.bins.entry(bin_index(ns)).or_default();
            *c = c.saturating_add(n);
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.zero = self.zero.saturating_add(other.zero);
        for (i, n) in &other.bins {
            let c = self.bins.entry(*i).or_default();
            *c = c.saturating_add(*n);
        }
    }

    pub fn count(&self) -> u64 {
        self.bins
            .values()
            .fold(self.zero, |a, n| a.saturating_add(*n))
    }

    /// The `q` quantile (0 ≤ q ≤ 1) in nanoseconds; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        if rank <= self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (i, c) in &self.bins {
            seen = seen.saturating_add(*c);
            if seen >= rank {
                return Some(bin_value(*i));
            }
        }
        self.bins.keys().next_back().map(|i| bin_value(*i))
    }

    /// Values at or below `ns` (an estimate within the bin's error), for
    /// cumulative histogram buckets.
    pub fn count_le(&self, ns: f64) -> u64 {
        let mut n = self.zero;
        for (i, c) in &self.bins {
            if bin_value(*i) <= ns {
                n = n.saturating_add(*c);
            } else {
                break;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect: counts from an agent are summed here; `+=` overflowed (a
    /// panic in a debug build, a wrapped rank in release). Failed on the old
    /// code emulated (`+=` again): "attempt to add with overflow".
    #[test]
    fn huge_counts_saturate() {
        let mut s = Sketch::default();
        s.insert_n(5_000, u64::MAX);
        s.insert_n(50_000, u64::MAX);
        s.zero = 7;
        assert_eq!(s.count(), u64::MAX);
        assert!(s.quantile(1.0).is_some());
        assert_eq!(s.count_le(1e12), u64::MAX);
    }

    #[test]
    fn every_duration_falls_in_the_bin_range() {
        let r = bin_range();
        for ns in [MIN_NS + 1, 10_000, u64::MAX / 3, u64::MAX] {
            assert!(r.contains(&bin_index(ns)), "{ns}");
        }
        assert!(r.clone().count() <= MAX_BINS);
    }

    /// The exact order statistic the sketch approximates.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_are_within_the_relative_error_after_merges() {
        // A deterministic spread over 5 decades, split across 7 sketches.
        let mut values: Vec<u64> = (0..20_000u64)
            .map(|i| 2_000 + (i * 7_919 % 20_000).pow(2) * 3 + i * 13)
            .collect();
        let mut parts = vec![Sketch::default(); 7];
        for (i, v) in values.iter().enumerate() {
            parts[i % 7].insert(*v);
        }
        let mut all = Sketch::default();
        for p in &parts {
            all.merge(p);
        }
        values.sort_unstable();
        assert_eq!(all.count(), values.len() as u64);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&values, q) as f64;
            let got = all.quantile(q).expect("not empty");
            assert!(
                (got - want).abs() <= RELATIVE_ACCURACY * want * (1.0 + 1e-9),
                "q={q}: got {got}, exact {want}"
            );
        }
    }

    #[test]
    fn tiny_values_go_to_the_zero_bin() {
        let mut s = Sketch::default();
        s.insert(0);
        s.insert(MIN_NS);
        s.insert(1_000_000);
        assert_eq!(s.zero, 2);
        assert_eq!(s.quantile(0.5), Some(0.0));
        let top = s.quantile(1.0).expect("value");
        assert!((top - 1e6).abs() <= 1e4, "{top}");
        assert_eq!(Sketch::default().quantile(0.5), None);
    }
}
