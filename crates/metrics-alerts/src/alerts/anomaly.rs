//! Anomaly detection for `anomaly(…) > K` rules (pure).
//!
//! Method: an exponentially weighted moving average with a deviation band.
//! Over the series' values of the previous [`BASELINE_POINTS`] windows
//! (each as long as the rule's window, oldest first) the mean and variance
//! are updated as `m ← m + α(x − m)`, `v ← (1 − α)(v + α(x − m)²)` with
//! α = [`ALPHA`]; the current window is anomalous when
//! `|x − m| > K · max(√v, 1 % of |m|)`. Windows without a value (no calls)
//! are skipped; fewer than [`MIN_POINTS`] values mean "no baseline yet",
//! never an alert. The baseline is recomputed from the store at every
//! evaluation, so a new Raft leader needs no replicated detector state.
//!
//! False positive rate (the test below, a seeded Gaussian series with a
//! slow daily-like swing, K = 3): see BENCHMARKS.md.

/// Smoothing factor of the EWMA.
pub const ALPHA: f64 = 0.1;
/// Windows of history the baseline is computed over.
pub const BASELINE_POINTS: usize = 60;
/// Values needed before anything can be flagged.
pub const MIN_POINTS: usize = 10;

/// The baseline a value was judged against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    pub anomalous: bool,
    pub mean: f64,
    pub deviation: f64,
}

/// Judges `current` against `history` (oldest first); `None` without a
/// baseline.
pub fn judge(history: &[f64], current: f64, k: f64) -> Option<Judgement> {
    let mut it = history.iter().copied().filter(|x| x.is_finite());
    let mut mean = it.next()?;
    let mut var = 0.0;
    let mut n = 1;
    for x in it {
        let d = x - mean;
        mean += ALPHA * d;
        var = (1.0 - ALPHA) * (var + ALPHA * d * d);
        n += 1;
    }
    if n < MIN_POINTS {
        return None;
    }
    let deviation = var.sqrt().max(0.01 * mean.abs()).max(f64::MIN_POSITIVE);
    Some(Judgement {
        anomalous: (current - mean).abs() > k * deviation,
        mean,
        deviation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded standard normal values (xorshift + Box–Muller).
    fn normals(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed;
        let mut u = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (a, b) = (u(), u());
                (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
            })
            .collect()
    }

    /// The false positive rate on a series with no anomaly: 100 ± 10 with
    /// a slow swing of ±20 over 1,440 points (a day of minutes).
    pub fn false_positive_rate(seed: u64, points: usize, k: f64, consecutive: usize) -> f64 {
        let noise = normals(seed, points);
        let series: Vec<f64> = noise
            .iter()
            .enumerate()
            .map(|(i, z)| {
                100.0 + 20.0 * (i as f64 * 2.0 * std::f64::consts::PI / 1440.0).sin() + 10.0 * z
            })
            .collect();
        let (mut flagged, mut judged, mut run) = (0, 0, 0);
        for i in BASELINE_POINTS..series.len() {
            let Some(j) = judge(&series[i - BASELINE_POINTS..i], series[i], k) else {
                continue;
            };
            judged += 1;
            run = if j.anomalous { run + 1 } else { 0 };
            if run >= consecutive {
                flagged += 1;
            }
        }
        flagged as f64 / judged as f64
    }

    #[test]
    fn false_positives_are_rare_and_a_real_shift_is_caught() {
        let one = false_positive_rate(20_240_601, 100_000, 3.0, 1);
        let two = false_positive_rate(20_240_601, 100_000, 3.0, 2);
        println!(
            "anomaly false positive rate, K=3: {:.4}% per window, {:.4}% with 2 consecutive windows",
            one * 100.0,
            two * 100.0
        );
        assert!(one < 0.01, "{one}");
        assert!(two < one);
        // A step of 6 noise deviations is flagged.
        let base: Vec<f64> = normals(9, 60).iter().map(|z| 100.0 + 10.0 * z).collect();
        let j = judge(&base, 160.0, 3.0).expect("baseline");
        assert!(j.anomalous, "{j:?}");
        assert!(judge(&base[..5], 160.0, 3.0).is_none(), "no baseline yet");
    }
}
