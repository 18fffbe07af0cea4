//! [`Record`]s in SQLite (`records` table, migration 0002).

use sqlx::{Row, SqliteConnection, SqlitePool};

use super::backend_error;
use crate::{
    StoreError,
    records::{Record, RecordKind, RecordScan, prefix_end},
};

pub(super) async fn put(pool: &SqlitePool, records: &[Record]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(backend_error)?;
    for r in records {
        sqlx::query(
            "INSERT INTO records (kind, key, time_ms, value) VALUES (?, ?, ?, ?) \
             ON CONFLICT (kind, key) DO UPDATE SET time_ms = excluded.time_ms, value = excluded.value",
        )
        .bind(r.kind.code())
        .bind(r.key.as_bytes())
        .bind(r.time_ms)
        .bind(&r.value)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
    }
    tx.commit().await.map_err(backend_error)
}

pub(super) async fn scan(
    conn: &mut SqliteConnection,
    scan: &RecordScan,
) -> Result<Vec<Record>, StoreError> {
    let start = scan.prefix.as_bytes().to_vec();
    let end = prefix_end(&start);
    let (from, to) = scan.time.unwrap_or((i64::MIN, i64::MAX));
    let limit = i64::try_from(scan.limit).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT key, time_ms, value FROM records WHERE kind = ? AND key >= ? \
         AND (? IS NULL OR key < ?) AND time_ms >= ? AND time_ms <= ? ORDER BY key LIMIT ?",
    )
    .bind(scan.kind.code())
    .bind(&start)
    .bind(end.as_deref())
    .bind(end.as_deref())
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend_error)?;
    rows.into_iter()
        .map(|row| decode(scan.kind, &row))
        .collect()
}

fn decode(kind: RecordKind, row: &sqlx::sqlite::SqliteRow) -> Result<Record, StoreError> {
    let key: Vec<u8> = row.try_get("key").map_err(backend_error)?;
    Ok(Record {
        kind,
        key: String::from_utf8(key).map_err(|e| StoreError::Corrupt(format!("record key: {e}")))?,
        time_ms: row.try_get("time_ms").map_err(backend_error)?,
        value: row.try_get("value").map_err(backend_error)?,
        trace: None,
    })
}

pub(super) async fn expire(pool: &SqlitePool, cutoff_ms: i64) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM records WHERE time_ms < ? AND kind NOT IN (5, 6, 7)")
        .bind(cutoff_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(backend_error)
}

/// Deletes one kind's records older than `before_ms`.
pub(super) async fn delete(
    pool: &SqlitePool,
    kind: RecordKind,
    before_ms: i64,
) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM records WHERE kind = ? AND time_ms < ?")
        .bind(kind.code())
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(backend_error)
}
