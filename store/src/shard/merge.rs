//! Merging the answers of several shards: parts of one trace, search
//! results ranked across shards, and the union of per-shard lists.

use std::collections::{BTreeMap, BTreeSet};

use model::{Trace, TraceId, TraceQuery};

use crate::StoreError;

/// The start of the latest span of `trace` matching `query`.
fn latest_match(trace: &Trace, query: &TraceQuery) -> Option<u64> {
    trace
        .spans
        .iter()
        .filter(|s| query.matches_span(s))
        .map(|s| s.start_unix_nano)
        .max()
}

/// Merges parts of one trace found on several shards.
pub(super) fn merge_into(into: &mut Trace, part: Trace) {
    for span in part.spans {
        if !into.spans.iter().any(|s| s.span_id == span.span_id) {
            into.spans.push(span);
        }
    }
    into.spans
        .sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
}

/// The sorted union of per-shard lists; shards that failed are left out
/// unless all failed (lists are hints for the UI, partial is better than
/// none).
pub(super) fn union<T: Ord>(lists: Vec<Result<Vec<T>, StoreError>>) -> Result<Vec<T>, StoreError> {
    let mut out = BTreeSet::new();
    let mut last_err = None;
    let mut answered = false;
    for list in lists {
        match list {
            Ok(l) => {
                answered = true;
                out.extend(l);
            }
            Err(e) => last_err = Some(e),
        }
    }
    match (answered, last_err) {
        (false, Some(e)) => Err(e),
        _ => Ok(out.into_iter().collect()),
    }
}

/// Merges per-shard answers: most recent match first, at most `limit`.
pub fn merge_search(query: &TraceQuery, parts: Vec<Vec<Trace>>) -> Vec<Trace> {
    let mut by_id: BTreeMap<TraceId, Trace> = BTreeMap::new();
    for trace in parts.into_iter().flatten() {
        match by_id.get_mut(&trace.trace_id) {
            Some(t) => merge_into(t, trace),
            None => {
                by_id.insert(trace.trace_id, trace);
            }
        }
    }
    let mut ranked: Vec<(u64, Trace)> = by_id
        .into_values()
        .filter_map(|t| latest_match(&t, query).map(|k| (k, t)))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.trace_id.cmp(&b.1.trace_id)));
    ranked.truncate(query.limit);
    ranked.into_iter().map(|(_, t)| t).collect()
}
