//! Parameters of `GET /api/v1/explain` (pure; table-tested).
//!
//! - The selection: `q` (TraceQL), or Jaeger's form filters `service`,
//!   `operation`, `spanKind`, `tags`, `tag`, `minDuration`,
//!   `maxDuration` (the same rules as `/api/traces`, including that `q`
//!   refuses them beside it).
//! - The window: `start`, `end` (µs since the epoch) or `lookback`,
//!   bounded like a search.
//! - `limit`: traces read per side ([`DEFAULT_PER_SIDE`], at most
//!   [`MAX_PER_SIDE`]).
//! - The baseline: `baselineQ` (TraceQL) and/or `baselineStart`,
//!   `baselineEnd` (µs). By default: the selection's service and
//!   operation in the selection's window. Whenever the two windows
//!   overlap, traces the selection matches are left out of the baseline.

use std::collections::BTreeSet;

use model::{TagFilter, Trace, TraceQuery};

use crate::{
    jaeger::params::{TracesRequest, pairs as parse_pairs, traces_request},
    traceql::{self, Query},
    window::{QueryLimits, micros_to_nanos},
};

/// Traces read per side when `limit` is absent or 0.
pub const DEFAULT_PER_SIDE: usize = 1_000;
/// The most traces read per side.
pub const MAX_PER_SIDE: usize = 10_000;

/// What selects the traces to explain.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Jaeger's form: a trace matches when one span satisfies every filter.
    Form(TraceQuery),
    /// TraceQL, evaluated on each candidate the store query returns.
    TraceQl { query: Query, store: TraceQuery },
}

impl Selection {
    /// The store search that returns (a superset of) the matches.
    pub fn store_query(&self) -> &TraceQuery {
        match self {
            Self::Form(q) => q,
            Self::TraceQl { store, .. } => store,
        }
    }

    /// Whether `trace` (already cut to the scope) is selected.
    pub fn matches(&self, trace: &Trace) -> bool {
        match self {
            Self::Form(q) => trace.spans.iter().any(|s| q.matches_span(s)),
            Self::TraceQl { query, .. } => query.eval(trace).is_some(),
        }
    }

    /// The dimension keys the selection filters on, which therefore say
    /// nothing about why its traces differ.
    pub fn filter_keys(&self) -> BTreeSet<String> {
        let q = self.store_query();
        let mut out = BTreeSet::new();
        if q.span_kind.is_some() {
            out.insert("kind".to_owned());
        }
        for TagFilter { key, .. } in &q.tags {
            match key.as_str() {
                "error" | "otel.status_code" => {
                    out.insert("status".to_owned());
                }
                "span.kind" => {
                    out.insert("kind".to_owned());
                }
                k => {
                    out.insert(format!("span.{k}"));
                    out.insert(format!("resource.{k}"));
                }
            }
        }
        out
    }
}

/// The baseline side.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// `baselineQ`; `None`: the selection's service and operation.
    pub query: Option<Query>,
    /// The store search for its candidates (window included).
    pub store: TraceQuery,
    /// Leave out traces the selection matches (the windows overlap).
    pub exclude_selection: bool,
}

/// A parsed explain request.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub selection: Selection,
    pub baseline: Baseline,
    /// Traces read per side.
    pub per_side: usize,
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn micros_param(pairs: &[(String, String)], key: &'static str) -> Result<Option<u64>, String> {
    first(pairs, key)
        .map(|v| {
            let us = v.parse::<u64>().map_err(|_| {
                format!("parameter '{key}' must be microseconds since the epoch, got {v:?}")
            })?;
            micros_to_nanos(key, us).map_err(|e| e.to_string())
        })
        .transpose()
}

fn per_side(pairs: &[(String, String)]) -> Result<usize, String> {
    match first(pairs, "limit") {
        None => Ok(DEFAULT_PER_SIDE),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(DEFAULT_PER_SIDE),
            Ok(n) => Ok(n.min(MAX_PER_SIDE)),
            Err(_) => Err(format!(
                "parameter 'limit' must be a non-negative integer, got {v:?}"
            )),
        },
    }
}

fn traceql_store_query(query: &Query, start: u64, end: u64) -> TraceQuery {
    let mut q = TraceQuery::window(start, end);
    query.plan().apply(&mut q);
    q
}

/// Parses the query string of `/api/v1/explain`; `now_nanos` is injected.
pub fn request(
    query: Option<&str>,
    now_nanos: u64,
    limits: &QueryLimits,
) -> Result<ExplainRequest, String> {
    let all = parse_pairs(query);
    // The selection's own parameters go to the search parser; the
    // baseline's and the per-side limit are ours.
    let ours = ["baselineQ", "baselineStart", "baselineEnd", "limit"];
    let pairs: Vec<(String, String)> = all
        .iter()
        .filter(|(k, _)| !ours.contains(&k.as_str()))
        .cloned()
        .collect();
    let per_side = per_side(&all)?;
    let selection = match traces_request(&pairs, now_nanos, limits)? {
        TracesRequest::ById(_) => {
            return Err(
                "parameter 'traceID' selects no set to explain; use q or the search filters".into(),
            );
        }
        TracesRequest::Search(q) => Selection::Form(q),
        TracesRequest::TraceQl(s) => {
            let store = traceql_store_query(&s.query, s.start, s.end);
            Selection::TraceQl {
                query: s.query,
                store,
            }
        }
    };
    let sel = selection.store_query();
    let (start, end) = (sel.start_min_unix_nano, sel.start_max_unix_nano);
    let b_start = micros_param(&all, "baselineStart")?.unwrap_or(start);
    let b_end = micros_param(&all, "baselineEnd")?.unwrap_or(end);
    if b_start > b_end {
        return Err("parameter 'baselineStart' is after 'baselineEnd'".into());
    }
    if b_end - b_start > limits.max_window_nanos() {
        return Err(format!(
            "parameters 'baselineStart'..'baselineEnd' span more than this gateway's longest window ({} h)",
            limits.max_window_nanos() / 3_600_000_000_000
        ));
    }
    let baseline_query = first(&all, "baselineQ")
        .map(|t| traceql::parse(t).map_err(|e| format!("parameter 'baselineQ': {e}")))
        .transpose()?;
    let store = match &baseline_query {
        Some(q) => traceql_store_query(q, b_start, b_end),
        None => {
            let mut q = TraceQuery::window(b_start, b_end);
            q.service.clone_from(&sel.service);
            q.operation.clone_from(&sel.operation);
            q
        }
    };
    Ok(ExplainRequest {
        baseline: Baseline {
            query: baseline_query,
            store,
            exclude_selection: b_start <= end && start <= b_end,
        },
        selection,
        per_side,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn parse(q: &str) -> Result<ExplainRequest, String> {
        request(Some(q), NOW, &QueryLimits::default())
    }

    #[test]
    fn a_form_selection_gets_a_baseline_of_its_service_and_operation() {
        let r = parse("service=web&operation=GET%20%2F&minDuration=200ms&tags=%7B%22error%22%3A%22true%22%7D&start=1699999000000000&end=1700000000000000").unwrap();
        let sel = r.selection.store_query();
        assert_eq!(sel.duration_min_nanos, Some(200_000_000));
        assert_eq!(r.baseline.store.service.as_deref(), Some("web"));
        assert_eq!(r.baseline.store.operation.as_deref(), Some("GET /"));
        assert_eq!(r.baseline.store.duration_min_nanos, None);
        assert!(r.baseline.store.tags.is_empty());
        assert_eq!(
            r.baseline.store.start_min_unix_nano,
            1_699_999_000_000_000_000
        );
        assert!(r.baseline.exclude_selection);
        assert_eq!(r.per_side, DEFAULT_PER_SIDE);
        assert_eq!(
            r.selection.filter_keys().into_iter().collect::<Vec<_>>(),
            ["status"]
        );
    }

    #[test]
    fn a_previous_window_baseline_keeps_the_selection_s_matches() {
        let r = parse("service=web&start=2000000&end=3000000&baselineStart=1000000&baselineEnd=1999999&limit=99999").unwrap();
        assert!(!r.baseline.exclude_selection);
        assert_eq!(r.baseline.store.start_max_unix_nano, 1_999_999_000);
        assert_eq!(r.per_side, MAX_PER_SIDE);
    }

    #[test]
    fn traceql_selections_and_baselines_parse_and_refusals_name_the_parameter() {
        let r = parse("q=%7B%20span.db.shard%20%3D%20%227%22%20%7D&baselineQ=%7B%20%7D").unwrap();
        assert!(matches!(r.selection, Selection::TraceQl { .. }));
        assert!(r.baseline.query.is_some());
        assert!(r.selection.filter_keys().contains("span.db.shard"));
        assert!(
            parse("traceID=0af7651916cd43dd8448eb211c80319c")
                .unwrap_err()
                .contains("traceID")
        );
        assert!(parse("baselineQ=%7B").unwrap_err().contains("baselineQ"));
        assert!(parse("q=%7B%7D&service=a").unwrap_err().contains("service"));
        assert!(parse("limit=x").unwrap_err().contains("limit"));
        assert!(
            parse("service=a&baselineStart=5&baselineEnd=4")
                .unwrap_err()
                .contains("baselineStart")
        );
    }
}
