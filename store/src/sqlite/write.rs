//! Batch writes: one transaction, multi-row inserts chunked under SQLite's
//! bound-variable limit, idempotent on (trace_id, span_id).

use std::collections::BTreeSet;

use model::Span;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::backend_error;
use crate::codec;
use crate::{StoreError, WriteOutcome};

/// Rows per statement: 10 columns × 500 = 5,000 variables, far below the
/// limit of 32,766, and large enough to amortise statement overhead.
const SPAN_ROWS: usize = 500;
/// Tag rows per statement: 4 columns × 2,000 = 8,000 variables.
const TAG_ROWS: usize = 2_000;

struct Row<'a> {
    span: &'a Span,
    body: Vec<u8>,
}

pub(crate) async fn write(pool: &SqlitePool, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
    if spans.is_empty() {
        return Ok(WriteOutcome::default());
    }
    // Encode before taking the write lock.
    let mut encoder = codec::Encoder::new()?;
    let rows = spans
        .iter()
        .map(|span| {
            Ok(Row {
                span,
                body: encoder.encode(span)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let ops: BTreeSet<(&str, &str, i32)> = spans
        .iter()
        .map(|s| (s.service_name(), s.name.as_str(), s.kind.as_i32()))
        .collect();
    let cluster_ops: BTreeSet<(&str, &str, &str, i32)> = spans
        .iter()
        .map(|s| {
            (
                s.cluster.as_str(),
                s.service_name(),
                s.name.as_str(),
                s.kind.as_i32(),
            )
        })
        .collect();

    let mut tx = pool.begin().await.map_err(backend_error)?;
    let mut inserted = 0u64;
    for chunk in rows.chunks(SPAN_ROWS) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO spans (trace_id, span_id, service, operation, span_kind, cluster, start_ns, duration_ns, is_error, body) ",
        );
        q.push_values(chunk, |mut b, row| {
            let s = row.span;
            b.push_bind(s.trace_id.as_bytes().to_vec())
                .push_bind(s.span_id.as_bytes().to_vec())
                .push_bind(s.service_name().to_owned())
                .push_bind(s.name.clone())
                .push_bind(i64::from(s.kind.as_i32()))
                .push_bind(s.cluster.as_str().to_owned())
                .push_bind(clamp_i64(s.start_unix_nano))
                .push_bind(clamp_i64(s.duration_nanos()))
                .push_bind(s.is_error())
                .push_bind(row.body.clone());
        });
        q.push(" ON CONFLICT (trace_id, span_id) DO NOTHING");
        let done = q.build().execute(&mut *tx).await.map_err(backend_error)?;
        inserted += done.rows_affected();
    }

    let tags: Vec<(&str, String, &Span)> = spans
        .iter()
        .flat_map(|s| {
            codec::search_tags(s)
                .into_iter()
                .map(move |(k, v)| (k, v, s))
        })
        .collect();
    for chunk in tags.chunks(TAG_ROWS) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT OR IGNORE INTO span_tags (key, value, trace_id, span_id) ");
        q.push_values(chunk, |mut b, (k, v, s)| {
            b.push_bind(k.to_string())
                .push_bind(v.clone())
                .push_bind(s.trace_id.as_bytes().to_vec())
                .push_bind(s.span_id.as_bytes().to_vec());
        });
        q.build().execute(&mut *tx).await.map_err(backend_error)?;
    }

    let ops: Vec<_> = ops.into_iter().collect();
    for chunk in ops.chunks(TAG_ROWS) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT OR IGNORE INTO operations (service, name, span_kind) ");
        q.push_values(chunk, |mut b, (svc, name, kind)| {
            b.push_bind(svc.to_string())
                .push_bind(name.to_string())
                .push_bind(i64::from(*kind));
        });
        q.build().execute(&mut *tx).await.map_err(backend_error)?;
    }
    let cluster_ops: Vec<_> = cluster_ops.into_iter().collect();
    for chunk in cluster_ops.chunks(TAG_ROWS) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT OR IGNORE INTO cluster_operations (cluster, service, name, span_kind) ",
        );
        q.push_values(chunk, |mut b, (cluster, svc, name, kind)| {
            b.push_bind(cluster.to_string())
                .push_bind(svc.to_string())
                .push_bind(name.to_string())
                .push_bind(i64::from(*kind));
        });
        q.build().execute(&mut *tx).await.map_err(backend_error)?;
    }
    tx.commit().await.map_err(backend_error)?;
    Ok(WriteOutcome {
        inserted,
        duplicates: spans.len() as u64 - inserted,
    })
}

/// Nanosecond times beyond i64 (year 2262) are clamped for the index
/// columns; the body keeps the exact value.
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
