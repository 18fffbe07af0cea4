//! Sampling correction: how many traces one stored trace stands for.
//!
//! Head sampling (`sampling::head`) keeps a span iff its randomness is at
//! or above the threshold `th` and writes the effective `th` into the
//! span's W3C tracestate (`ot=th:…`). A kept trace stands for
//! 2^56 / (2^56 − th) traces (its adjusted count, 1/p). Sampling only
//! gets sparser downstream, so a trace's count comes from the largest
//! `th` among its spans; a trace without `th` counts 1.

use model::Trace;
use sampling::head::{SPACE, parse_ot};

/// The adjusted count of a stored trace (≥ 1).
pub fn adjusted_count(trace: &Trace) -> f64 {
    let th = trace
        .spans
        .iter()
        .filter_map(|s| parse_ot(&s.trace_state).th)
        .max()
        .unwrap_or(0);
    SPACE as f64 / (SPACE - th.min(SPACE - 1)) as f64
}

#[cfg(test)]
mod tests {
    use sampling::head::{format_th, threshold};
    use store::testsuite::{SpanBuilder, trace_id};

    use super::*;

    fn with_state(states: &[&str]) -> Trace {
        Trace {
            trace_id: trace_id(1),
            spans: states
                .iter()
                .enumerate()
                .map(|(i, ts)| {
                    let mut s = SpanBuilder::new(1, i as u64 + 1, "a").build();
                    s.trace_state = (*ts).to_owned();
                    s
                })
                .collect(),
        }
    }

    #[test]
    fn the_largest_threshold_of_the_trace_gives_its_count() {
        assert!((adjusted_count(&with_state(&["", ""])) - 1.0).abs() < 1e-9);
        // th:8 is p = 1/2, th:c is p = 1/4.
        assert!((adjusted_count(&with_state(&["ot=th:8", ""])) - 2.0).abs() < 1e-9);
        assert!((adjusted_count(&with_state(&["ot=th:8", "ot=th:c"])) - 4.0).abs() < 1e-9);
        let one_percent = format!("ot=th:{}", format_th(threshold(0.01)));
        let c = adjusted_count(&with_state(&[&one_percent]));
        assert!((c - 100.0).abs() < 0.01, "{c}");
        // A malformed entry counts as unsampled.
        assert!((adjusted_count(&with_state(&["ot=th:zz"])) - 1.0).abs() < 1e-9);
    }
}
