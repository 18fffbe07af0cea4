//! Search and trace retrieval.

use std::collections::HashMap;

use model::{SpanKind, Trace, TraceId, TraceQuery, access::Scope};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::backend_error;
use crate::codec;
use crate::{Operation, StoreError};

/// Appends ` AND {column} IN (…)` for a scope of named clusters (nothing
/// for every cluster). An empty set is answered before any query runs.
fn push_scope(q: &mut QueryBuilder<Sqlite>, column: &str, scope: &Scope) {
    if let Some(clusters) = scope.clusters() {
        q.push(format_args!(" AND {column} IN ("));
        let mut sep = q.separated(", ");
        for c in clusters {
            sep.push_bind(c.clone());
        }
        q.push(")");
    }
}

/// Whether a scope sees nothing (an empty set of clusters).
fn sees_nothing(scope: &Scope) -> bool {
    scope.clusters().is_some_and(|c| c.is_empty())
}

/// Service names seen in the scope's clusters, sorted.
pub(crate) async fn services(
    conn: &mut SqliteConnection,
    scope: &Scope,
) -> Result<Vec<String>, StoreError> {
    if sees_nothing(scope) {
        return Ok(Vec::new());
    }
    let mut q: QueryBuilder<Sqlite> = if scope.is_all() {
        QueryBuilder::new("SELECT DISTINCT service FROM operations WHERE 1 = 1")
    } else {
        QueryBuilder::new("SELECT DISTINCT service FROM cluster_operations WHERE 1 = 1")
    };
    push_scope(&mut q, "cluster", scope);
    q.push(" ORDER BY service");
    q.build_query_scalar::<String>()
        .fetch_all(&mut *conn)
        .await
        .map_err(backend_error)
}

/// Operations of `service` seen in the scope's clusters, sorted.
pub(crate) async fn operations(
    conn: &mut SqliteConnection,
    service: &str,
    span_kind: Option<SpanKind>,
    scope: &Scope,
) -> Result<Vec<Operation>, StoreError> {
    if sees_nothing(scope) {
        return Ok(Vec::new());
    }
    let mut q: QueryBuilder<Sqlite> = if scope.is_all() {
        QueryBuilder::new("SELECT DISTINCT name, span_kind FROM operations WHERE service = ")
    } else {
        QueryBuilder::new(
            "SELECT DISTINCT name, span_kind FROM cluster_operations WHERE service = ",
        )
    };
    q.push_bind(service.to_owned());
    if let Some(kind) = span_kind {
        q.push(" AND span_kind = ")
            .push_bind(i64::from(kind.as_i32()));
    }
    push_scope(&mut q, "cluster", scope);
    q.push(" ORDER BY name, span_kind");
    let rows: Vec<(String, i64)> = q
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(backend_error)?;
    Ok(rows
        .into_iter()
        .map(|(name, kind)| Operation {
            name,
            span_kind: SpanKind::from_otlp(i32::try_from(kind).unwrap_or(0)),
        })
        .collect())
}

fn ns(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Trace ids with at least one span matching every filter, most recent
/// matching span first.
pub(crate) async fn find_trace_ids(
    conn: &mut SqliteConnection,
    query: &TraceQuery,
) -> Result<Vec<TraceId>, StoreError> {
    if sees_nothing(&query.scope) {
        return Ok(Vec::new());
    }
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT s.trace_id, MAX(s.start_ns) AS latest FROM spans s WHERE s.start_ns >= ",
    );
    q.push_bind(ns(query.start_min_unix_nano));
    q.push(" AND s.start_ns <= ");
    q.push_bind(ns(query.start_max_unix_nano));
    // The scope is a condition on the matching span, inside the grouped
    // and limited query: a trace with no span in scope is never counted.
    push_scope(&mut q, "s.cluster", &query.scope);
    if let Some(service) = &query.service {
        q.push(" AND s.service = ").push_bind(service.clone());
    }
    if let Some(op) = &query.operation {
        q.push(" AND s.operation = ").push_bind(op.clone());
    }
    if let Some(kind) = query.span_kind {
        q.push(" AND s.span_kind = ")
            .push_bind(i64::from(kind.as_i32()));
    }
    if let Some(min) = query.duration_min_nanos {
        q.push(" AND s.duration_ns >= ").push_bind(ns(min));
    }
    if let Some(max) = query.duration_max_nanos {
        q.push(" AND s.duration_ns <= ").push_bind(ns(max));
    }
    for tag in &query.tags {
        q.push(" AND EXISTS (SELECT 1 FROM span_tags t WHERE t.key = ")
            .push_bind(tag.key.clone())
            .push(" AND t.value = ")
            .push_bind(tag.value.clone())
            .push(" AND t.trace_id = s.trace_id AND t.span_id = s.span_id)");
    }
    q.push(" GROUP BY s.trace_id ORDER BY latest DESC LIMIT ");
    q.push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    let rows: Vec<(Vec<u8>, i64)> = q
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(backend_error)?;
    rows.into_iter()
        .map(|(id, _)| {
            TraceId::from_bytes(&id).map_err(|e| StoreError::Corrupt(format!("trace id: {e}")))
        })
        .collect()
}

/// All spans of each trace, sorted by start time, in the order of `ids`;
/// traces with no stored span are omitted.
pub(crate) async fn load_traces(
    conn: &mut SqliteConnection,
    ids: &[TraceId],
) -> Result<Vec<Trace>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_id: HashMap<TraceId, Vec<model::Span>> = HashMap::new();
    let mut decoder = codec::Decoder::new()?;
    for chunk in ids.chunks(500) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT body FROM spans WHERE trace_id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_bytes().to_vec());
        }
        q.push(")");
        let bodies: Vec<(Vec<u8>,)> = q
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .map_err(backend_error)?;
        for (body,) in bodies {
            let span = decoder.decode(&body)?;
            by_id.entry(span.trace_id).or_default().push(span);
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| {
            by_id.remove(id).map(|mut spans| {
                spans.sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
                Trace {
                    trace_id: *id,
                    spans,
                }
            })
        })
        .collect())
}

/// The earliest `cap` spans of a trace (by start time) and whether more
/// are stored. SQLite's sorter keeps only `cap + 1` rows for an ordered
/// `LIMIT`, so memory follows the cap, not the trace.
pub(crate) async fn load_trace_capped(
    conn: &mut SqliteConnection,
    id: TraceId,
    cap: usize,
) -> Result<Option<crate::CappedTrace>, StoreError> {
    let limit = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
    let bodies: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT body FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id LIMIT ?",
    )
    .bind(id.as_bytes().to_vec())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend_error)?;
    if bodies.is_empty() {
        return Ok(None);
    }
    let mut decoder = codec::Decoder::new()?;
    let mut spans = bodies
        .iter()
        .map(|(body,)| decoder.decode(body))
        .collect::<Result<Vec<_>, _>>()?;
    // The exact order (the index column is clamped at i64::MAX).
    spans.sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
    Ok(Some(crate::CappedTrace::cap(
        Trace {
            trace_id: id,
            spans,
        },
        cap,
    )))
}
