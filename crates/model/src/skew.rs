//! Clock-skew estimation between clusters (groundwork for the federation
//! issue): pure functions and a bounded estimator, no I/O.
//!
//! A client span in cluster A whose child server span runs in cluster B
//! gives one sample of B's clock offset relative to A, NTP style: with a
//! symmetric network, the server's midpoint equals the client's midpoint,
//! so `offset = server midpoint − client midpoint`. One sample is noisy
//! (asymmetric queues, retries); the estimate per ordered cluster pair is a
//! time-decayed weighted median of many, after dropping samples that cannot
//! be right (a server longer than its client, an offset beyond
//! [`SkewConfig::max_abs_offset_nanos`]). Offsets relative to a reference
//! cluster come from walking the graph of pairs from it.

use std::collections::{BTreeMap, VecDeque};

use crate::ClusterId;

/// One client → server pair crossing a cluster boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub client_cluster: ClusterId,
    pub server_cluster: ClusterId,
    pub client_start: u64,
    pub client_end: u64,
    pub server_start: u64,
    pub server_end: u64,
}

/// The server cluster's clock minus the client cluster's, in nanoseconds,
/// or `None` when the pair cannot carry a sample (same cluster, negative
/// durations, a server that outlasts its client).
pub fn pair_offset(p: &Pair) -> Option<i64> {
    if p.client_cluster == p.server_cluster
        || p.client_end < p.client_start
        || p.server_end < p.server_start
        || p.server_end - p.server_start > p.client_end - p.client_start
    {
        return None;
    }
    let mid = |a: u64, b: u64| i128::from(a) + (i128::from(b) - i128::from(a)) / 2;
    i64::try_from(mid(p.server_start, p.server_end) - mid(p.client_start, p.client_end)).ok()
}

/// Estimator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SkewConfig {
    /// Samples kept per ordered cluster pair (the oldest go first).
    pub max_samples: usize,
    /// Samples older than this are forgotten.
    pub horizon_nanos: u64,
    /// A sample's weight halves every this long.
    pub half_life_nanos: u64,
    /// Offsets beyond this are impossible (a broken clock, not skew).
    pub max_abs_offset_nanos: i64,
    /// An estimate needs at least this many samples.
    pub min_samples: usize,
}

impl Default for SkewConfig {
    fn default() -> Self {
        Self {
            max_samples: 1_024,
            horizon_nanos: 3_600 * 1_000_000_000,
            half_life_nanos: 600 * 1_000_000_000,
            max_abs_offset_nanos: 600 * 1_000_000_000,
            min_samples: 5,
        }
    }
}

/// An offset estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// Add to this cluster's timestamps to express them on the reference
    /// cluster's clock: `reference time = local time − nanos`.
    pub nanos: i64,
    /// Samples behind the estimate (the weakest link on the path).
    pub samples: usize,
}

/// Bounded per-pair sample windows and the estimates drawn from them.
#[derive(Debug, Clone, Default)]
pub struct SkewEstimator {
    config: SkewConfig,
    /// (client cluster, server cluster) → (observed at, offset) samples.
    samples: BTreeMap<(ClusterId, ClusterId), VecDeque<(u64, i64)>>,
}

/// The weighted median of `(value, weight)`.
fn weighted_median(mut items: Vec<(i64, f64)>) -> Option<i64> {
    items.retain(|(_, w)| *w > 0.0);
    if items.is_empty() {
        return None;
    }
    items.sort_by_key(|(v, _)| *v);
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut acc = 0.0;
    for (v, w) in &items {
        acc += w;
        if acc >= total / 2.0 {
            return Some(*v);
        }
    }
    items.last().map(|(v, _)| *v)
}

impl SkewEstimator {
    pub fn new(config: SkewConfig) -> Self {
        Self {
            config,
            samples: BTreeMap::new(),
        }
    }

    /// Records a pair seen at `now` (any clock, consistently); returns
    /// whether it carried a usable sample.
    pub fn observe(&mut self, pair: &Pair, now: u64) -> bool {
        let Some(offset) = pair_offset(pair) else {
            return false;
        };
        if offset.unsigned_abs() > self.config.max_abs_offset_nanos.unsigned_abs() {
            return false;
        }
        let window = self
            .samples
            .entry((pair.client_cluster.clone(), pair.server_cluster.clone()))
            .or_default();
        window.push_back((now, offset));
        while window.len() > self.config.max_samples {
            window.pop_front();
        }
        true
    }

    /// The offset of `to`'s clock relative to `from`'s, from samples in
    /// both directions, if enough are recent enough at `now`.
    fn pair_estimate(&self, from: &ClusterId, to: &ClusterId, now: u64) -> Option<(i64, usize)> {
        let weight = |at: u64| {
            let age = now.saturating_sub(at);
            if age > self.config.horizon_nanos {
                return 0.0;
            }
            0.5f64.powf(age as f64 / self.config.half_life_nanos.max(1) as f64)
        };
        let mut items = Vec::new();
        if let Some(w) = self.samples.get(&(from.clone(), to.clone())) {
            items.extend(w.iter().map(|(at, o)| (*o, weight(*at))));
        }
        if let Some(w) = self.samples.get(&(to.clone(), from.clone())) {
            items.extend(w.iter().map(|(at, o)| (-*o, weight(*at))));
        }
        let n = items.iter().filter(|(_, w)| *w > 0.0).count();
        if n < self.config.min_samples {
            return None;
        }
        weighted_median(items).map(|o| (o, n))
    }

    /// Every cluster's offset relative to `reference` at `now`, walking
    /// from it over pairs with enough samples (breadth first, so each
    /// cluster is reached over the fewest hops). Clusters not connected to
    /// the reference are absent.
    pub fn offsets(&self, reference: &ClusterId, now: u64) -> BTreeMap<ClusterId, Offset> {
        let mut clusters: Vec<ClusterId> = Vec::new();
        for (a, b) in self.samples.keys() {
            for c in [a, b] {
                if !clusters.contains(c) {
                    clusters.push(c.clone());
                }
            }
        }
        let mut out = BTreeMap::new();
        out.insert(
            reference.clone(),
            Offset {
                nanos: 0,
                samples: usize::MAX,
            },
        );
        let mut queue = VecDeque::from([reference.clone()]);
        while let Some(at) = queue.pop_front() {
            let base = out[&at];
            for next in &clusters {
                if out.contains_key(next) {
                    continue;
                }
                if let Some((o, n)) = self.pair_estimate(&at, next, now) {
                    out.insert(
                        next.clone(),
                        Offset {
                            nanos: base.nanos.saturating_add(o),
                            samples: base.samples.min(n),
                        },
                    );
                    queue.push_back(next.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn c(name: &str) -> ClusterId {
        ClusterId::new(name).expect("valid")
    }

    /// A deterministic xorshift for noise.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// A call from `a` to `b` at true time `t`, with `b`'s clock off by
    /// `skew_b − skew_a`, asymmetric network delays and server work.
    fn call(rng: &mut Rng, a: (&str, i64), b: (&str, i64), t: u64) -> Pair {
        let out = MS + rng.below(4 * MS);
        let back = MS + rng.below(4 * MS);
        let work = rng.below(20 * MS);
        let shift = |x: u64, s: i64| x.saturating_add_signed(s);
        Pair {
            client_cluster: c(a.0),
            server_cluster: c(b.0),
            client_start: shift(t, a.1),
            client_end: shift(t + out + work + back, a.1),
            server_start: shift(t + out, b.1),
            server_end: shift(t + out + work, b.1),
        }
    }

    #[test]
    fn a_symmetric_pair_gives_the_exact_offset_and_bad_pairs_none() {
        let p = Pair {
            client_cluster: c("a"),
            server_cluster: c("b"),
            client_start: 1_000,
            client_end: 2_000,
            server_start: 1_300,
            server_end: 1_700,
        };
        assert_eq!(pair_offset(&p), Some(0));
        let skewed = Pair {
            server_start: 1_300 + 250,
            server_end: 1_700 + 250,
            ..p.clone()
        };
        assert_eq!(pair_offset(&skewed), Some(250));
        for bad in [
            Pair {
                server_cluster: c("a"),
                ..p.clone()
            },
            Pair {
                server_end: 2_900,
                ..p.clone()
            },
            Pair {
                client_end: 0,
                ..p.clone()
            },
        ] {
            assert_eq!(pair_offset(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn injected_offsets_are_recovered_within_2_ms_over_several_hops() {
        // east is the reference; west runs 250 ms ahead, south 80 ms behind,
        // and south only talks to west (two hops from east).
        let (east, west, south) = (
            ("east", 0),
            ("west", 250 * MS as i64),
            ("south", -(80 * MS as i64)),
        );
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut est = SkewEstimator::new(SkewConfig::default());
        let t0 = 1_700_000_000_000_000_000u64;
        for i in 0..2_000u64 {
            let t = t0 + i * 10 * MS;
            est.observe(&call(&mut rng, east, west, t), t);
            est.observe(&call(&mut rng, west, east, t), t);
            est.observe(&call(&mut rng, west, south, t), t);
        }
        // Outliers (a retry measured as one long server span, a broken
        // clock) do not move the median.
        for i in 0..50u64 {
            let mut p = call(&mut rng, east, west, t0 + i);
            p.server_start += 900 * MS;
            p.server_end += 900 * MS;
            est.observe(&p, t0 + 20_000 * MS);
        }
        let now = t0 + 20_000 * MS;
        let offsets = est.offsets(&c("east"), now);
        let near = |cluster: &str, want: i64| {
            let got = offsets[&c(cluster)].nanos;
            assert!(
                (got - want).abs() <= 2 * MS as i64,
                "{cluster}: {got} vs {want}"
            );
        };
        near("east", 0);
        near("west", 250 * MS as i64);
        near("south", -(80 * MS as i64));
    }

    #[test]
    fn old_samples_decay_and_too_few_give_no_estimate() {
        let cfg = SkewConfig {
            horizon_nanos: 60 * 1_000 * MS,
            half_life_nanos: 10 * 1_000 * MS,
            ..SkewConfig::default()
        };
        let mut est = SkewEstimator::new(cfg);
        let mut rng = Rng(7);
        let t0 = 1_000_000 * MS;
        // An hour-old regime: west was 500 ms ahead.
        for i in 0..200 {
            let t = t0 + i * MS;
            est.observe(
                &call(&mut rng, ("east", 0), ("west", 500 * MS as i64), t),
                t,
            );
        }
        // Recent: west was fixed, now 100 ms ahead.
        let later = t0 + 3_600 * 1_000 * MS;
        for i in 0..20 {
            let t = later + i * MS;
            est.observe(
                &call(&mut rng, ("east", 0), ("west", 100 * MS as i64), t),
                t,
            );
        }
        let got = est.offsets(&c("east"), later + 100 * MS)[&c("west")].nanos;
        assert!((got - 100 * MS as i64).abs() <= 3 * MS as i64, "{got}");

        let mut sparse = SkewEstimator::new(SkewConfig::default());
        for i in 0..4 {
            sparse.observe(&call(&mut rng, ("east", 0), ("west", 0), i), i);
        }
        assert!(!sparse.offsets(&c("east"), 10).contains_key(&c("west")));
        // Impossible offsets are not samples.
        let mut wild = call(&mut rng, ("east", 0), ("west", 0), 0);
        wild.server_start += 3_600 * 1_000 * MS;
        wild.server_end += 3_600 * 1_000 * MS;
        assert!(!sparse.observe(&wild, 0));
    }

    #[test]
    fn windows_are_bounded() {
        let mut est = SkewEstimator::new(SkewConfig {
            max_samples: 16,
            ..SkewConfig::default()
        });
        let mut rng = Rng(3);
        for i in 0..1_000 {
            est.observe(&call(&mut rng, ("east", 0), ("west", 0), i * MS), i * MS);
        }
        assert!(est.samples.values().all(|w| w.len() <= 16));
    }
}
