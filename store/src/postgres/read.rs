//! Trace retrieval and search.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt as _;
use model::{SpanKind, Trace, TraceId, TraceQuery, access::Scope};
use sqlx::{PgPool, Postgres, QueryBuilder};

use telemetry::clock::unix_nanos;

use super::{PgStore, backend_error, clamp_i64, day_range, terms, today};
use crate::{Operation, SearchResult, StoreError, chunk};

/// Candidate traces fetched per round of a search.
const PAGE: i64 = 200;
/// A search confirms at most this many candidate traces, then answers
/// with what it found and a warning.
pub(crate) const MAX_CANDIDATES: usize = 20_000;

struct Window {
    day_lo: i32,
    day_hi: i32,
    min: i64,
    max: i64,
    /// Upper bound of `last_ns` for rows overlapping [min, max].
    last_max: i64,
}

/// One page of candidate (trace id, last_ns), newest first, after
/// `cursor`. The statement holds only the conditions that apply, so the
/// planner can use an index for each of them.
async fn candidates(
    store: &PgStore,
    w: &Window,
    terms: &terms::QueryTerms,
    min_duration: Option<i64>,
    scope: Option<&[String]>,
    cursor: Option<&(i64, Vec<u8>)>,
) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT trace_id, last_ns FROM traces WHERE day BETWEEN ");
    q.push_bind(w.day_lo)
        .push(" AND ")
        .push_bind(w.day_hi)
        .push(" AND last_ns BETWEEN ")
        .push_bind(w.min)
        .push(" AND ")
        .push_bind(w.last_max)
        .push(" AND first_ns <= ")
        .push_bind(w.max);
    if !terms.all.is_empty() {
        q.push(" AND terms @> ").push_bind(terms.all.clone());
    }
    if !terms.any.is_empty() {
        q.push(" AND terms && ").push_bind(terms.any.clone());
    }
    if let Some(d) = min_duration {
        q.push(" AND max_duration_ns >= ").push_bind(d);
    }
    if let Some(scope) = scope {
        // Candidates hold a span of a cluster in scope; the confirmation
        // (`matches_span`) then requires it of the matching span.
        q.push(" AND clusters && ARRAY(SELECT id FROM names WHERE kind = 2 AND name = ANY(")
            .push_bind(scope.to_vec())
            .push("))");
    }
    if let Some((last, id)) = cursor {
        q.push(" AND (last_ns, trace_id) < (")
            .push_bind(*last)
            .push(", ")
            .push_bind(id.clone())
            .push(")");
    }
    q.push(" ORDER BY last_ns DESC, trace_id DESC LIMIT ")
        .push_bind(PAGE);
    q.build_query_as()
        .fetch_all(store.pool())
        .await
        .map_err(backend_error)
}

/// All spans of each trace, sorted by start time, in the order of `ids`;
/// traces with no stored span are omitted.
pub(crate) async fn load_traces(pool: &PgPool, ids: &[TraceId]) -> Result<Vec<Trace>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes().as_slice()).collect();
    let rows: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT body FROM chunks WHERE trace_id = ANY($1::bytea[])")
            .bind(&keys)
            .fetch_all(pool)
            .await
            .map_err(backend_error)?;
    let mut decoder = chunk::ChunkDecoder::new()?;
    let mut by_id: HashMap<TraceId, Vec<model::Span>> = HashMap::with_capacity(ids.len());
    for (body,) in rows {
        for span in decoder.decode(&body)? {
            by_id.entry(span.trace_id).or_default().push(span);
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| {
            by_id.remove(id).map(|mut spans| {
                spans.sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
                spans.dedup_by_key(|s| s.span_id);
                Trace {
                    trace_id: *id,
                    spans,
                }
            })
        })
        .collect())
}

/// At most `cap` spans of a trace, read chunk by chunk (oldest day and
/// `last_ns` first) and stopped once past the cap, so memory follows the
/// cap plus one chunk, not the trace.
pub(crate) async fn load_trace_capped(
    pool: &PgPool,
    id: TraceId,
    cap: usize,
) -> Result<Option<crate::CappedTrace>, StoreError> {
    let mut rows = sqlx::query_as::<_, (Vec<u8>,)>(
        "SELECT body FROM chunks WHERE trace_id = $1 ORDER BY day, last_ns",
    )
    .bind(id.as_bytes().as_slice())
    .fetch(pool);
    let mut decoder = chunk::ChunkDecoder::new()?;
    let mut spans: Vec<model::Span> = Vec::new();
    let mut seen: HashSet<model::SpanId> = HashSet::new();
    let mut any = false;
    while let Some((body,)) = rows.try_next().await.map_err(backend_error)? {
        any = true;
        for span in decoder.decode(&body)? {
            if span.trace_id == id && seen.insert(span.span_id) {
                spans.push(span);
            }
        }
        if spans.len() > cap {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    spans.sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
    Ok(Some(crate::CappedTrace::cap(
        Trace {
            trace_id: id,
            spans,
        },
        cap,
    )))
}

/// Candidates come from the summary rows, newest `last_ns` first; each is
/// confirmed on its spans. The answer is exact: the search stops once it
/// holds `limit` traces and no remaining candidate (whose matching spans
/// start at or before its `last_ns`) could rank above them.
pub(crate) async fn search(
    store: &PgStore,
    query: &TraceQuery,
) -> Result<SearchResult, StoreError> {
    let mut result = SearchResult::default();
    let scope = scope_names(&query.scope);
    if query.limit == 0
        || query.start_min_unix_nano > query.start_max_unix_nano
        || scope.as_ref().is_some_and(Vec::is_empty)
    {
        return Ok(result);
    }
    let (day_lo, day_hi) = day_range(
        query.start_min_unix_nano,
        query.start_max_unix_nano,
        today(unix_nanos()),
    );
    let required = terms::query_terms(query, &store.indexed);
    // Rows overlapping the window have last_ns <= max + the day's longest
    // extent: the bound keeps the newest-first scan inside the window.
    let extent: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(max_extent), 0)::bigint FROM day_extent WHERE day BETWEEN $1 AND $2",
    )
    .bind(day_lo)
    .bind(day_hi)
    .fetch_one(store.pool())
    .await
    .map_err(backend_error)?;
    let last_max = clamp_i64(query.start_max_unix_nano).saturating_add(extent);
    let min_duration = query.duration_min_nanos.map(clamp_i64);
    let mut found: Vec<(u64, Trace)> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut cursor: Option<(i64, Vec<u8>)> = None;
    let mut scanned = 0usize;
    loop {
        let rows = candidates(
            store,
            &Window {
                day_lo,
                day_hi,
                min: clamp_i64(query.start_min_unix_nano),
                max: clamp_i64(query.start_max_unix_nano),
                last_max,
            },
            &required,
            min_duration,
            scope.as_deref(),
            cursor.as_ref(),
        )
        .await?;
        let exhausted = (rows.len() as i64) < PAGE;
        cursor = rows.last().map(|(id, last)| (*last, id.clone()));
        // Candidates in this page that cannot beat the current top `limit`
        // end the search.
        let bar = (found.len() >= query.limit).then(|| found[query.limit - 1].0);
        let mut fresh: Vec<TraceId> = Vec::with_capacity(rows.len());
        let mut stop = false;
        for (id, last_ns) in &rows {
            if bar.is_some_and(|b| u64::try_from(*last_ns).unwrap_or(0) < b) {
                stop = true;
                break;
            }
            if seen.insert(id.clone()) {
                fresh.push(
                    TraceId::from_bytes(id)
                        .map_err(|e| StoreError::Corrupt(format!("trace id: {e}")))?,
                );
            }
        }
        scanned += fresh.len();
        for trace in load_traces(store.pool(), &fresh).await? {
            let latest = trace
                .spans
                .iter()
                .filter(|s| query.matches_span(s))
                .map(|s| s.start_unix_nano)
                .max();
            if let Some(latest) = latest {
                found.push((latest, trace));
            }
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.trace_id.cmp(&b.1.trace_id)));
        found.truncate(query.limit);
        if stop || exhausted {
            break;
        }
        if scanned >= MAX_CANDIDATES {
            result.warnings.push(format!(
                "search stopped after confirming {scanned} candidate traces; results may be incomplete: \
                 narrow the time range, or search by service or an indexed tag"
            ));
            break;
        }
    }
    result.traces = found.into_iter().map(|(_, t)| t).collect();
    Ok(result)
}

/// The scope's cluster names, `None` for every cluster.
fn scope_names(scope: &Scope) -> Option<Vec<String>> {
    scope.clusters().map(|c| c.iter().cloned().collect())
}

/// Service names seen in the scope's clusters, sorted.
pub(crate) async fn services(pool: &PgPool, scope: &Scope) -> Result<Vec<String>, StoreError> {
    match scope_names(scope) {
        None => {
            sqlx::query_scalar::<_, String>("SELECT name FROM names WHERE kind = 1 ORDER BY name")
                .fetch_all(pool)
                .await
                .map_err(backend_error)
        }
        Some(clusters) => sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT n.name FROM cluster_operations co \
             JOIN names c ON c.id = co.cluster_id \
             JOIN operations o ON o.id = co.op_id \
             JOIN names n ON n.id = o.service_id \
             WHERE c.kind = 2 AND c.name = ANY($1) ORDER BY n.name",
        )
        .bind(&clusters)
        .fetch_all(pool)
        .await
        .map_err(backend_error),
    }
}

/// Operations of `service` seen in the scope's clusters, sorted.
pub(crate) async fn operations(
    pool: &PgPool,
    service: &str,
    span_kind: Option<SpanKind>,
    scope: &Scope,
) -> Result<Vec<Operation>, StoreError> {
    let rows: Vec<(String, i16)> = sqlx::query_as(
        "SELECT o.name, o.span_kind FROM operations o JOIN names n ON n.id = o.service_id \
         WHERE n.kind = 1 AND n.name = $1 AND ($2::smallint IS NULL OR o.span_kind = $2) \
         AND ($3::text[] IS NULL OR EXISTS (SELECT 1 FROM cluster_operations co \
              JOIN names c ON c.id = co.cluster_id \
              WHERE co.op_id = o.id AND c.kind = 2 AND c.name = ANY($3))) \
         ORDER BY o.name, o.span_kind",
    )
    .bind(service)
    .bind(span_kind.map(|k| i16::try_from(k.as_i32()).unwrap_or(0)))
    .bind(scope_names(scope))
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    Ok(rows
        .into_iter()
        .map(|(name, kind)| Operation {
            name,
            span_kind: SpanKind::from_otlp(i32::from(kind)),
        })
        .collect())
}
