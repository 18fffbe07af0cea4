//! The pure comparison of two sides: dimensions ranked by
//! [`score`](super::score::score), latency and gaps by delta.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use model::Trace;
use serde::Serialize;

use super::{critical::critical_path, facts::trace_facts, score, weight::adjusted_count};

/// How the comparison is bounded and what it leaves out.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keys not scored: those the selection itself filters on (a
    /// selection made of error traces would otherwise find `status=error`).
    pub exclude_keys: BTreeSet<String>,
    /// Distinct values a key may have across both sides; a key with more
    /// is skipped and reported in `skippedKeys`.
    pub max_values_per_key: usize,
    /// Distinct keys tracked; beyond, new keys are skipped and counted.
    pub max_keys: usize,
    /// Dimensions in the answer, best first.
    pub max_dimensions: usize,
    /// Example selection trace ids per dimension.
    pub examples: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            exclude_keys: BTreeSet::new(),
            max_values_per_key: 64,
            max_keys: 1_024,
            max_dimensions: 50,
            examples: 3,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SideSummary {
    /// Traces read (after sampling down to the limit).
    pub traces: usize,
    /// Spans in the traces read.
    pub spans: usize,
    /// Traces the read ones stand for under head sampling.
    pub adjusted_traces: f64,
    /// Mean root duration, weighted by adjusted count.
    pub mean_duration_ms: f64,
    /// Matching traces found before sampling down to the limit.
    pub candidates: usize,
    /// Whether the traces read are a uniform sample of more.
    pub sampled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dimension {
    pub key: String,
    pub value: String,
    pub selection_share: f64,
    pub baseline_share: f64,
    pub score: f64,
    #[serde(rename = "exampleTraceIDs")]
    pub example_trace_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub service: String,
    pub cluster: String,
    pub selection_self_ms: f64,
    pub baseline_self_ms: f64,
    pub delta_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub from_cluster: String,
    pub to_cluster: String,
    pub selection_ms: f64,
    pub baseline_ms: f64,
    pub delta_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedKey {
    pub key: String,
    /// Distinct values seen before the key was skipped.
    pub distinct_values: usize,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub selection: SideSummary,
    pub baseline: SideSummary,
    pub dimensions: Vec<Dimension>,
    pub latency: Vec<Latency>,
    pub gaps: Vec<Gap>,
    pub skipped_keys: Vec<SkippedKey>,
    /// Keys left out because the selection filters on them.
    pub excluded_keys: Vec<String>,
    /// [`score::SIGNIFICANT_SCORE`]: dimensions at or above are likely causes.
    pub significant_score: f64,
}

#[derive(Default)]
struct Counts {
    sel: f64,
    base: f64,
    examples: Vec<String>,
}

#[derive(Default)]
struct KeyStats {
    values: HashMap<String, Counts>,
    overflow: Option<usize>,
}

/// Weighted sums of one side's critical paths.
#[derive(Default)]
struct PathSums {
    self_ns: BTreeMap<(String, String), f64>,
    gaps_ns: BTreeMap<(String, String), f64>,
    duration_ns: f64,
}

struct Tally<'o> {
    opts: &'o Options,
    keys: BTreeMap<String, KeyStats>,
    keys_over: BTreeMap<String, usize>,
}

impl Tally<'_> {
    fn add(&mut self, trace: &Trace, w: f64, selection: bool) {
        let id = trace.trace_id.to_hex();
        for (k, v) in trace_facts(trace) {
            if self.opts.exclude_keys.contains(&k) {
                continue;
            }
            if !self.keys.contains_key(&k) && self.keys.len() >= self.opts.max_keys {
                *self.keys_over.entry(k).or_default() += 1;
                continue;
            }
            let ks = self.keys.entry(k).or_default();
            if ks.overflow.is_some() {
                continue;
            }
            if !ks.values.contains_key(&v) && ks.values.len() >= self.opts.max_values_per_key {
                ks.overflow = Some(ks.values.len() + 1);
                ks.values = HashMap::new();
                continue;
            }
            let c = ks.values.entry(v).or_default();
            if selection {
                c.sel += w;
                if c.examples.len() < self.opts.examples {
                    c.examples.push(id.clone());
                }
            } else {
                c.base += w;
            }
        }
    }
}

fn side(traces: &[Trace], weights: &[f64], paths: &mut PathSums) -> SideSummary {
    for (t, &w) in traces.iter().zip(weights) {
        let p = critical_path(t);
        for (k, ns) in p.self_ns {
            *paths.self_ns.entry(k).or_default() += w * ns as f64;
        }
        for (k, ns) in p.gaps_ns {
            *paths.gaps_ns.entry(k).or_default() += w * ns as f64;
        }
        paths.duration_ns += w * p.duration_ns as f64;
    }
    let total: f64 = weights.iter().sum();
    SideSummary {
        traces: traces.len(),
        spans: traces.iter().map(|t| t.spans.len()).sum(),
        adjusted_traces: total,
        mean_duration_ms: ms(paths.duration_ns, total),
        candidates: traces.len(),
        sampled: false,
    }
}

/// Kish's effective sample size, (Σw)² / Σw²: the number of traces read
/// when every weight is the same, fewer when head sampling mixed rates
/// (a share estimated from a few heavy traces is less certain).
fn effective_n(weights: &[f64]) -> f64 {
    let sum: f64 = weights.iter().sum();
    let sq: f64 = weights.iter().map(|w| w * w).sum();
    if sq > 0.0 { sum * sum / sq } else { 0.0 }
}

fn ms(sum_ns: f64, total: f64) -> f64 {
    if total > 0.0 {
        sum_ns / total / 1e6
    } else {
        0.0
    }
}

fn deltas<T>(
    sel: &BTreeMap<(String, String), f64>,
    base: &BTreeMap<(String, String), f64>,
    (ws, wb): (f64, f64),
    make: impl Fn(&(String, String), f64, f64) -> T,
) -> Vec<T> {
    let keys: BTreeSet<&(String, String)> = sel.keys().chain(base.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let s = ms(sel.get(k).copied().unwrap_or(0.0), ws);
            let b = ms(base.get(k).copied().unwrap_or(0.0), wb);
            make(k, s, b)
        })
        .collect()
}

/// Compares `selection` with `baseline` (traces already cut to the
/// caller's scope and skew-corrected).
pub fn explain(selection: &[Trace], baseline: &[Trace], opts: &Options) -> Explanation {
    let ws: Vec<f64> = selection.iter().map(adjusted_count).collect();
    let wb: Vec<f64> = baseline.iter().map(adjusted_count).collect();
    let (mut ps, mut pb) = (PathSums::default(), PathSums::default());
    let sel_summary = side(selection, &ws, &mut ps);
    let base_summary = side(baseline, &wb, &mut pb);
    let (tot_s, tot_b) = (sel_summary.adjusted_traces, base_summary.adjusted_traces);

    let mut tally = Tally {
        opts,
        keys: BTreeMap::new(),
        keys_over: BTreeMap::new(),
    };
    for (t, &w) in selection.iter().zip(&ws) {
        tally.add(t, w, true);
    }
    for (t, &w) in baseline.iter().zip(&wb) {
        tally.add(t, w, false);
    }
    let (n_s, n_b) = (effective_n(&ws), effective_n(&wb));
    let share = |w: f64, tot: f64| if tot > 0.0 { w / tot } else { 0.0 };
    let mut dimensions = Vec::new();
    let mut skipped_keys = Vec::new();
    for (key, ks) in tally.keys {
        if let Some(distinct) = ks.overflow {
            skipped_keys.push(SkippedKey {
                key,
                distinct_values: distinct,
                reason: "too many distinct values",
            });
            continue;
        }
        for (value, c) in ks.values {
            let (s, b) = (share(c.sel, tot_s), share(c.base, tot_b));
            dimensions.push(Dimension {
                key: key.clone(),
                value,
                selection_share: s,
                baseline_share: b,
                score: score::score(s, n_s, b, n_b),
                example_trace_ids: c.examples,
            });
        }
    }
    skipped_keys.extend(tally.keys_over.into_keys().map(|key| SkippedKey {
        key,
        distinct_values: 0,
        reason: "too many distinct keys",
    }));
    dimensions.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| (&a.key, &a.value).cmp(&(&b.key, &b.value)))
    });
    dimensions.truncate(opts.max_dimensions);

    let w = (tot_s, tot_b);
    let mut latency = deltas(&ps.self_ns, &pb.self_ns, w, |(svc, c), s, b| Latency {
        service: svc.clone(),
        cluster: c.clone(),
        selection_self_ms: s,
        baseline_self_ms: b,
        delta_ms: s - b,
    });
    latency.sort_by(|a, b| b.delta_ms.total_cmp(&a.delta_ms));
    let mut gaps = deltas(&ps.gaps_ns, &pb.gaps_ns, w, |(f, t), s, b| Gap {
        from_cluster: f.clone(),
        to_cluster: t.clone(),
        selection_ms: s,
        baseline_ms: b,
        delta_ms: s - b,
    });
    gaps.sort_by(|a, b| b.delta_ms.total_cmp(&a.delta_ms));
    Explanation {
        selection: sel_summary,
        baseline: base_summary,
        dimensions,
        latency,
        gaps,
        skipped_keys,
        excluded_keys: opts.exclude_keys.iter().cloned().collect(),
        significant_score: score::SIGNIFICANT_SCORE,
    }
}
