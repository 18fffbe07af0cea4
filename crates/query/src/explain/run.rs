//! Reading both sides from the store, bounded, then comparing them.
//!
//! Each side's window is cut into [`SLICES`] equal time slices, and each
//! slice is searched for up to `2·limit / SLICES` traces (the store
//! answers the newest first, so one search over the whole window would
//! read only its end), [`READ_AHEAD`] slices at a time (a Postgres store
//! answers them on separate connections and shards; they are consumed in
//! order). The candidates, cut to the caller's scope and
//! confirmed (TraceQL, the baseline's exclusion of selected traces), are
//! then sampled down to `limit` uniformly: by a hash of the trace id.
//! The answer says how many candidates there were and whether it
//! sampled. The reads stop at the deadline (the selection may use half of
//! it, the baseline the rest) or when a side holds [`MAX_SPANS_PER_SIDE`]
//! spans; what was read by then is compared and the answer says it is
//! partial.
//!
//! Both sides are shown on the reference cluster's clock
//! ([`crate::stitched::shown_traces`]) before their critical paths are
//! walked, so a gap between clusters is not a clock offset.

use std::collections::HashSet;

use futures::StreamExt;
use model::{Trace, TraceQuery, access::Scope};
use serde::Serialize;
use store::{SpanStore, StoreError};
use tokio::time::Instant;

use super::{
    analyze::{Explanation, Options, explain},
    params::{ExplainRequest, Selection},
};
use crate::scoped;

/// Time slices per side's window.
pub const SLICES: u64 = 16;
/// Slice searches in flight per side: the store's own parallelism, not
/// the caller's, bounds the rest (each search holds at most `per_slice`
/// traces, so at most this many slices' traces are read past a bound).
pub const READ_AHEAD: usize = 4;
/// The most spans one side holds in memory (candidates before sampling).
pub const MAX_SPANS_PER_SIDE: usize = 2_000_000;

/// The answer of `/api/v1/explain`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    #[serde(flatten)]
    pub explanation: Explanation,
    /// Traces read per side at most.
    pub limit: usize,
    /// The deadline stopped the reads: the comparison covers less.
    pub partial: bool,
    pub warnings: Vec<String>,
}

/// A side as read.
struct Read {
    traces: Vec<Trace>,
    candidates: usize,
    sampled: bool,
}

/// splitmix64: a fixed mix of the trace id's randomness, so the uniform
/// sample does not follow head sampling's own cut on the same bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `[start, end]` cut into [`SLICES`] inclusive slices.
fn slices(start: u64, end: u64) -> Vec<(u64, u64)> {
    let len = end - start;
    let n = SLICES.min(len.max(1));
    (0..n)
        .map(|i| {
            let lo = start + (u128::from(len) * u128::from(i) / u128::from(n)) as u64;
            let hi = if i + 1 == n {
                end
            } else {
                start + (u128::from(len) * u128::from(i + 1) / u128::from(n)) as u64 - 1
            };
            (lo, hi.max(lo))
        })
        .collect()
}

struct Ctx<'a> {
    store: &'a dyn SpanStore,
    scope: &'a Scope,
    partial: bool,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    async fn read(
        &mut self,
        base: &TraceQuery,
        limit: usize,
        deadline: Instant,
        accept: impl Fn(&Trace) -> bool,
    ) -> Result<Read, StoreError> {
        let per_slice = (2 * limit).div_ceil(SLICES as usize).max(4);
        let mut seen = HashSet::new();
        let mut pool = Vec::new();
        let mut saturated = false;
        let mut spans = 0usize;
        let store = self.store;
        let queries: Vec<TraceQuery> = slices(base.start_min_unix_nano, base.start_max_unix_nano)
            .into_iter()
            .map(|(lo, hi)| {
                let mut q = base.clone();
                q.start_min_unix_nano = lo;
                q.start_max_unix_nano = hi;
                q.limit = per_slice;
                // The store applies the caller's scope, narrowed (never
                // widened) by a TraceQL plan's cluster.
                q.scope = match base.scope.clusters() {
                    None => self.scope.clone(),
                    Some(planned) => {
                        Scope::only(planned.iter().filter(|c| self.scope.allows(c)).cloned())
                    }
                };
                q
            })
            .collect();
        // Dropping the stream (a bound or the deadline) cancels the
        // searches still in flight.
        let mut found_slices = futures::stream::iter(queries)
            .map(|q| async move { store.search(&q).await })
            .buffered(READ_AHEAD);
        loop {
            if spans >= MAX_SPANS_PER_SIDE {
                self.partial = true;
                self.warnings.push(format!(
                    "a side reached {MAX_SPANS_PER_SIDE} spans: the rest of its window was not read"
                ));
                break;
            }
            let found = match tokio::time::timeout_at(deadline, found_slices.next()).await {
                Ok(Some(found)) => found?,
                Ok(None) => break,
                Err(_) => {
                    self.partial = true;
                    break;
                }
            };
            self.warnings.extend(found.warnings);
            saturated |= found.traces.len() >= per_slice;
            for t in found.traces {
                if !seen.insert(t.trace_id) {
                    continue;
                }
                if let Some((t, _hidden)) = scoped::visible(t, self.scope)
                    && accept(&t)
                {
                    spans += t.spans.len();
                    pool.push(t);
                }
            }
        }
        let candidates = pool.len();
        let sampled = saturated || candidates > limit;
        if candidates > limit {
            pool.sort_by_key(|t| mix(t.trace_id.randomness()));
            pool.truncate(limit);
        }
        Ok(Read {
            traces: pool,
            candidates,
            sampled,
        })
    }

    /// The traces on the reference clock; without offsets, as stored.
    async fn on_one_clock(&mut self, traces: Vec<Trace>) -> Vec<Trace> {
        match crate::stitched::shown_traces(self.store, traces.clone(), false, self.scope).await {
            Ok(shown) => {
                let moved = shown.iter().filter(|(_, w)| !w.is_empty()).count();
                if moved > 0 {
                    self.warnings.push(format!(
                        "clock skew: {moved} traces were moved onto the reference cluster's clock"
                    ));
                }
                shown.into_iter().map(|(t, _)| t).collect()
            }
            Err(e) => {
                tracing::debug!(error = %e, "explain: no clock offsets; stored times");
                self.warnings
                    .push("no clock offsets: times are compared as stored".into());
                traces
            }
        }
    }
}

/// Reads both sides of `req` for `scope` until `deadline` and compares them.
pub async fn run(
    store: &dyn SpanStore,
    req: &ExplainRequest,
    scope: &Scope,
    deadline: Instant,
) -> Result<Answer, StoreError> {
    let mut cx = Ctx {
        store,
        scope,
        partial: false,
        warnings: Vec::new(),
    };
    // Half the time for the selection, so the baseline is never starved.
    let now = Instant::now();
    let half = now + deadline.saturating_duration_since(now) / 2;
    let sel = &req.selection;
    // A form search's store answer is its match; TraceQL is confirmed.
    let form = matches!(sel, Selection::Form(_));
    let selection = cx
        .read(sel.store_query(), req.per_side, half, |t| {
            form || sel.matches(t)
        })
        .await?;
    let b = &req.baseline;
    let baseline = cx
        .read(&b.store, req.per_side, deadline, |t| {
            b.query.as_ref().is_none_or(|q| q.eval(t).is_some())
                && !(b.exclude_selection && sel.matches(t))
        })
        .await?;
    let sel_traces = cx.on_one_clock(selection.traces).await;
    let base_traces = cx.on_one_clock(baseline.traces).await;
    let opts = Options {
        exclude_keys: sel.filter_keys(),
        ..Options::default()
    };
    let mut explanation =
        telemetry::run_blocking(move || explain(&sel_traces, &base_traces, &opts))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    explanation.selection.candidates = selection.candidates;
    explanation.selection.sampled = selection.sampled;
    explanation.baseline.candidates = baseline.candidates;
    explanation.baseline.sampled = baseline.sampled;
    if cx.partial {
        cx.warnings.push(
            "the deadline stopped the reads: the comparison covers the traces read by then".into(),
        );
    }
    let mut seen = HashSet::new();
    cx.warnings.retain(|w| seen.insert(w.clone()));
    Ok(Answer {
        explanation,
        limit: req.per_side,
        partial: cx.partial,
        warnings: cx.warnings,
    })
}
