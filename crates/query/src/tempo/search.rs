//! TraceQL search over the store: the plan narrows candidates with the
//! store's indexes, each candidate is cut to the caller's scope and
//! confirmed by evaluation. Inexact plans fetch candidates in growing
//! rounds (4×, then 16×, … the limit) up to [`MAX_CANDIDATES`]; a search
//! that stops there says so.

use model::{Trace, TraceQuery, access::Scope};
use store::{SpanStore, StoreError};

use crate::{
    scoped,
    traceql::{Matched, Query},
};

/// Most candidate traces one search loads.
pub const MAX_CANDIDATES: usize = 2_000;
/// Most traces one search returns.
pub const MAX_LIMIT: usize = 1_000;

/// One matching trace, cut to the scope.
#[derive(Debug, Clone)]
pub struct Hit {
    pub trace: Trace,
    pub matched: Matched,
    /// Spans of the stored trace the scope hid.
    pub hidden: usize,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub hits: Vec<Hit>,
    /// Candidate traces evaluated.
    pub inspected: usize,
    pub warnings: Vec<String>,
}

/// Runs `query` over `[start, end]` (unix nanoseconds) for `scope`.
pub async fn run(
    store: &dyn SpanStore,
    query: &Query,
    start: u64,
    end: u64,
    limit: usize,
    scope: &Scope,
) -> Result<Outcome, StoreError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let plan = query.plan();
    let mut base = TraceQuery {
        limit,
        scope: scope.clone(),
        ..TraceQuery::window(start, end)
    };
    plan.apply(&mut base);
    let mut fetch = if plan.exact {
        limit
    } else {
        limit.saturating_mul(4).max(20)
    };
    loop {
        fetch = fetch.min(MAX_CANDIDATES);
        let mut q = base.clone();
        q.limit = fetch;
        let found = store.search(&q).await?;
        let candidates = found.traces.len();
        let mut out = Outcome {
            inspected: candidates,
            warnings: found.warnings,
            ..Outcome::default()
        };
        for t in found.traces {
            if out.hits.len() >= limit {
                break;
            }
            // Evaluated on what the caller may see, never on hidden spans.
            let Some((trace, hidden)) = scoped::visible(t, scope) else {
                continue;
            };
            if let Some(matched) = query.eval(&trace) {
                out.hits.push(Hit {
                    trace,
                    matched,
                    hidden,
                });
            }
        }
        let exhausted = candidates < fetch;
        if out.hits.len() >= limit || exhausted {
            return Ok(out);
        }
        if fetch >= MAX_CANDIDATES {
            out.warnings.push(format!(
                "the search confirmed the newest {MAX_CANDIDATES} candidate traces and stopped; narrow the time range or the query for older matches"
            ));
            return Ok(out);
        }
        fetch = fetch.saturating_mul(4);
    }
}
