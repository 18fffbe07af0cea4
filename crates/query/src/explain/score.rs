//! The score of one dimension: how much more often the selection has it
//! than the baseline, as the z-score of a log-odds ratio smoothed by a
//! prior (ARCHITECTURE.md, "Explain").
//!
//! Each side's share is estimated from adjusted counts (unbiased under
//! head sampling) but its evidence is the traces actually read, as Kish's
//! effective sample size n = (Σw)²/Σw² of their adjusted counts w (the
//! number read when all were kept at one rate): `a = share × n`. Both sides get [`PRIOR_TRACES`] pseudo-traces split by
//! the pooled share, so a value seen in one or two traces has a small
//! log-odds and a large variance, and cannot win on noise:
//!
//! ```text
//! p0 = (a + b + 1) / (nₛ + n_b + 2)
//! δ  = ln((a + αp0) / (nₛ − a + α(1−p0))) − ln((b + αp0) / (n_b − b + α(1−p0)))
//! σ² = 1/(a + αp0) + 1/(nₛ − a + α(1−p0)) + 1/(b + αp0) + 1/(n_b − b + α(1−p0))
//! score = δ / σ
//! ```
//!
//! Positive: over-represented in the selection. Under no difference the
//! score is close to a standard normal.

/// Pseudo-traces of prior on each side (α).
pub const PRIOR_TRACES: f64 = 10.0;

/// A score at or above this marks a dimension as a likely cause; under
/// the null a dimension passes it with probability ≈ 3·10⁻⁵, so among
/// the few hundred dimensions of an answer a false one is rare.
pub const SIGNIFICANT_SCORE: f64 = 4.0;

/// The score of a dimension with `share_s` of `n_s` selection traces and
/// `share_b` of `n_b` baseline traces. 0 when a side is empty.
pub fn score(share_s: f64, n_s: f64, share_b: f64, n_b: f64) -> f64 {
    if n_s <= 0.0 || n_b <= 0.0 {
        return 0.0;
    }
    let a = share_s.clamp(0.0, 1.0) * n_s;
    let b = share_b.clamp(0.0, 1.0) * n_b;
    let p0 = (a + b + 1.0) / (n_s + n_b + 2.0);
    let (a1, a0) = (a + PRIOR_TRACES * p0, n_s - a + PRIOR_TRACES * (1.0 - p0));
    let (b1, b0) = (b + PRIOR_TRACES * p0, n_b - b + PRIOR_TRACES * (1.0 - p0));
    let delta = (a1 / a0).ln() - (b1 / b0).ln();
    let var = 1.0 / a1 + 1.0 / a0 + 1.0 / b1 + 1.0 / b0;
    let z = delta / var.sqrt();
    if z.is_finite() { z } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_in_every_selected_trace_and_no_baseline_trace_is_significant() {
        assert!(score(1.0, 50.0, 0.0, 500.0) > SIGNIFICANT_SCORE);
        // At 1 % sampling: a handful of traces still carry the evidence.
        assert!(score(1.0, 20.0, 0.0, 200.0) > SIGNIFICANT_SCORE);
    }

    #[test]
    fn rare_values_do_not_win_on_noise() {
        // One selected trace has it, no baseline trace does.
        let rare = score(0.01, 100.0, 0.0, 1000.0);
        assert!(rare < 1.0, "{rare}");
        // Two traces out of two: a perfect share on no evidence.
        let tiny = score(1.0, 2.0, 0.0, 2.0);
        assert!(tiny < SIGNIFICANT_SCORE, "{tiny}");
        // A large, well-supported difference outranks both.
        assert!(score(0.6, 100.0, 0.2, 1000.0) > tiny.max(rare));
    }

    #[test]
    fn equal_shares_score_zero_and_direction_gives_the_sign() {
        assert!(score(0.3, 100.0, 0.3, 1000.0).abs() < 0.2);
        assert!(score(0.1, 100.0, 0.5, 1000.0) < -SIGNIFICANT_SCORE);
        assert!(score(1.0, 100.0, 1.0, 1000.0).abs() < 0.5);
        assert_eq!(score(1.0, 0.0, 0.5, 10.0), 0.0);
    }
}
