//! RED windows: [`model::red`] ↔ `metrics.proto`.

use std::collections::BTreeMap;

use model::red::{Aggregate, Exemplar, Sketch};

use crate::metrics::{Exemplar as PbExemplar, RedSeries};

/// Why a series could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedError {
    #[error("series {service}/{operation}: {problem}")]
    Invalid {
        service: String,
        operation: String,
        problem: &'static str,
    },
}

/// The wire form of one series' aggregate.
pub fn to_series(
    service: &str,
    operation: &str,
    span_kind: &str,
    status_code: &str,
    agg: &Aggregate,
) -> RedSeries {
    RedSeries {
        service: service.to_owned(),
        operation: operation.to_owned(),
        span_kind: span_kind.to_owned(),
        status_code: status_code.to_owned(),
        count: agg.count,
        errors: agg.errors,
        duration_sum_ns: agg.duration_sum_ns,
        zero_count: agg.sketch.zero,
        bin_index: agg.sketch.bins.keys().copied().collect(),
        bin_count: agg.sketch.bins.values().copied().collect(),
        exemplars: agg
            .exemplars
            .iter()
            .map(|e| PbExemplar {
                trace_id: e.trace_id.clone(),
                duration_ns: e.duration_ns,
                error: e.error,
            })
            .collect(),
    }
}

/// The aggregate a wire series carries, checked for consistency.
pub fn from_series(s: &RedSeries) -> Result<Aggregate, RedError> {
    let bad = |problem| RedError::Invalid {
        service: s.service.clone(),
        operation: s.operation.clone(),
        problem,
    };
    if s.bin_index.len() != s.bin_count.len() {
        return Err(bad("bin_index and bin_count differ in length"));
    }
    if s.errors > s.count {
        return Err(bad("more errors than calls"));
    }
    if s.bin_index.len() > model::red::MAX_BINS {
        return Err(bad("more sketch bins than any duration range needs"));
    }
    let range = model::red::bin_range();
    if s.bin_index.iter().any(|i| !range.contains(i)) {
        return Err(bad("a sketch bin index no duration can have"));
    }
    let mut bins = BTreeMap::new();
    for (i, n) in s.bin_index.iter().zip(&s.bin_count) {
        let c: &mut u64 = bins.entry(*i).or_default();
        *c = c.saturating_add(*n);
    }
    let sketch = Sketch {
        zero: s.zero_count,
        bins,
    };
    if sketch.count() != s.count {
        return Err(bad("the sketch does not hold `count` values"));
    }
    Ok(Aggregate {
        count: s.count,
        errors: s.errors,
        duration_sum_ns: s.duration_sum_ns,
        sketch,
        exemplars: s
            .exemplars
            .iter()
            .take(model::red::MAX_EXEMPLARS)
            .map(|e| Exemplar {
                trace_id: e.trace_id.clone(),
                duration_ns: e.duration_ns,
                error: e.error,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_round_trip_and_inconsistent_ones_are_refused() {
        let mut a = Aggregate::default();
        a.observe(2_000_000, true, Some(&[7; 16]));
        a.observe(500, false, None);
        let s = to_series("svc", "op", "server", "ERROR", &a);
        assert_eq!(from_series(&s), Ok(a));
        let mut broken = s.clone();
        broken.count += 1;
        assert!(from_series(&broken).is_err());
        broken = s;
        broken.bin_count.push(1);
        assert!(from_series(&broken).is_err());
    }

    /// Defect: bins per series had no cap (a series could carry millions
    /// of bins and every merge walked them all). Failed on the old code
    /// emulated (no `MAX_BINS` check).
    #[test]
    fn bins_are_bounded() {
        let mut a = Aggregate::default();
        a.observe(2_000_000, false, None);
        let good = to_series("svc", "op", "server", "OK", &a);
        let mut many = good.clone();
        let n = model::red::MAX_BINS + 1;
        many.bin_index = (0..n as i32).map(|i| 400 + i).collect();
        many.bin_count = vec![0; n];
        many.bin_count[0] = 1;
        let err = from_series(&many).unwrap_err().to_string();
        assert!(err.contains("bins"), "{err}");
        let mut outside = good;
        outside.bin_index[0] = i32::MIN;
        assert!(from_series(&outside).is_err());
    }
}
