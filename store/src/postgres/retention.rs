//! Retention and storage figures for one shard.
//!
//! Retention is idempotent and safe to run from any gateway (the
//! gateway-cluster issue hands it to the shard's lease holder):
//! 1. days that every cluster's TTL has passed lose their partitions
//!    (`DROP TABLE`: no row-by-row work, no bloat);
//! 2. in the remaining days, chunks of a cluster whose TTL passed are
//!    deleted row by row, then summaries left without chunks;
//! 3. days that are over (before today, UTC) get their GIN search index
//!    rebuilt once (`REINDEX … CONCURRENTLY`: writes go on meanwhile).

use std::collections::{BTreeMap, BTreeSet};

use model::RetentionPolicy;

use super::{DAY_NANOS, PgStore, backend_error, clamp_i64};
use crate::{ClusterUsage, RetentionReport, ShardUsage, StoreError, usage::apportion};

/// Days that have a partition (of `chunks`; `traces` is created with it).
pub(crate) async fn partition_days<'e>(
    db: impl sqlx::PgExecutor<'e>,
) -> Result<BTreeSet<i32>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'chunks'",
    )
    .fetch_all(db)
    .await
    .map_err(backend_error)?;
    Ok(names
        .iter()
        .filter_map(|n| n.strip_prefix("chunks_p")?.parse().ok())
        .collect())
}

pub(crate) async fn enforce(
    store: &PgStore,
    policy: &RetentionPolicy,
    now_unix_nano: u64,
) -> Result<RetentionReport, StoreError> {
    let pool = store.pool();
    let mut report = RetentionReport::default();

    // 1. Whole days past every TTL.
    if let Some(cutoff) = policy.global_cutoff(now_unix_nano) {
        // Day d holds spans starting before (d + 1) days.
        let expired: Vec<i32> = partition_days(pool)
            .await?
            .into_iter()
            .filter(|d| (u64::try_from(*d).unwrap_or(0) + 1) * DAY_NANOS <= cutoff)
            .collect();
        for day in &expired {
            let mut tx = pool.begin().await.map_err(backend_error)?;
            sqlx::query("SELECT pg_advisory_xact_lock(7210001)")
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            for ddl in [
                format!("DROP TABLE IF EXISTS chunks_p{day}"),
                format!("DROP TABLE IF EXISTS traces_p{day}"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(ddl))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
            }
            sqlx::query("DELETE FROM day_extent WHERE day = $1")
                .bind(day)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            sqlx::query("DELETE FROM compacted_days WHERE day = $1")
                .bind(day)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            sqlx::query("DELETE FROM usage WHERE day = $1")
                .bind(day)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            tx.commit().await.map_err(backend_error)?;
            report.partitions_dropped += 1;
        }
        store.forget_partitions(expired).await;
    }

    // 2. Per cluster, in the days that remain.
    let clusters: Vec<(i32, String)> = sqlx::query_as(
        "SELECT DISTINCT u.cluster, n.name FROM usage u JOIN names n ON n.id = u.cluster",
    )
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    for (cluster, name) in clusters {
        let Some(cutoff) = policy.cutoff(&name, now_unix_nano) else {
            continue;
        };
        let last_day = i32::try_from(cutoff / DAY_NANOS).unwrap_or(i32::MAX);
        let mut tx = pool.begin().await.map_err(backend_error)?;
        let deleted: Vec<(i32, i32, i32)> = sqlx::query_as(
            "DELETE FROM chunks WHERE day <= $1 AND cluster = $2 AND last_ns < $3 \
             RETURNING day, span_count, octet_length(body)",
        )
        .bind(last_day)
        .bind(cluster)
        .bind(clamp_i64(cutoff))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend_error)?;
        if deleted.is_empty() {
            tx.rollback().await.map_err(backend_error)?;
            continue;
        }
        let mut per_day: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for (day, spans, bytes) in &deleted {
            let e = per_day.entry(*day).or_default();
            e.0 += i64::from(*spans);
            e.1 += i64::from(*bytes);
            report.spans_deleted += u64::try_from(*spans).unwrap_or(0);
        }
        for (day, (spans, bytes)) in &per_day {
            sqlx::query(
                "UPDATE usage SET spans = GREATEST(spans - $3, 0), body_bytes = GREATEST(body_bytes - $4, 0) \
                 WHERE day = $1 AND cluster = $2",
            )
            .bind(day)
            .bind(cluster)
            .bind(spans)
            .bind(bytes)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        }
        sqlx::query(
            "DELETE FROM traces t WHERE t.day <= $1 AND NOT EXISTS \
             (SELECT 1 FROM chunks c WHERE c.trace_id = t.trace_id AND c.day = t.day)",
        )
        .bind(last_day)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
        sqlx::query("DELETE FROM usage WHERE spans = 0")
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        tx.commit().await.map_err(backend_error)?;
    }
    report.partitions_compacted = compact_sealed_days(store, now_unix_nano).await?;
    // Derived records (summaries, edges, backlinks) live as long as the
    // longest-kept spans.
    if let Some(cutoff) = policy.global_cutoff(now_unix_nano) {
        super::records::expire(
            &store.pool,
            i64::try_from(cutoff / 1_000_000).unwrap_or(i64::MAX),
        )
        .await?;
    }
    Ok(report)
}

/// Rebuilds the search index of each day partition that is over and was
/// not rebuilt yet. Late spans may still arrive; the index stays correct,
/// only less compact for them.
async fn compact_sealed_days(store: &PgStore, now_unix_nano: u64) -> Result<u64, StoreError> {
    // One compactor per shard at a time: gateways whose passes overlap
    // skip instead of queueing behind each other's rebuild.
    let mut conn = store.pool().acquire().await.map_err(backend_error)?;
    let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(7210002)")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend_error)?;
    if !mine {
        return Ok(0);
    }
    // A rebuild of a big day takes longer than the pool's statement
    // timeout; lift it on this connection only, and restore it.
    let result = match sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await
    {
        Ok(_) => compact_locked(&mut conn, now_unix_nano).await,
        Err(e) => Err(backend_error(e)),
    };
    let restored = sqlx::query("SET statement_timeout = '30s'")
        .execute(&mut *conn)
        .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(7210002)")
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() || restored.is_err() {
        // The lock dies with the session: drop the connection.
        conn.detach();
    }
    result
}

async fn compact_locked(
    pool: &mut sqlx::PgConnection,
    now_unix_nano: u64,
) -> Result<u64, StoreError> {
    let sealed_before = super::today(now_unix_nano);
    let done: BTreeSet<i32> = sqlx::query_scalar("SELECT day FROM compacted_days")
        .fetch_all(&mut *pool)
        .await
        .map_err(backend_error)?
        .into_iter()
        .collect();
    let mut compacted = 0;
    let days = partition_days(&mut *pool).await?;
    for day in days {
        if day >= sealed_before || done.contains(&day) {
            continue;
        }
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT i.indexrelid::regclass::text FROM pg_index i \
             JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid \
             JOIN pg_am a ON a.oid = x.relam WHERE t.relname = $1 AND a.amname = 'gin' \
               AND i.indisvalid",
        )
        .bind(format!("traces_p{day}"))
        .fetch_all(&mut *pool)
        .await
        .map_err(backend_error)?;
        // A rebuild interrupted by a shutdown leaves an invalid `_ccnew`
        // copy behind; drop it before rebuilding again.
        let leftovers: Vec<String> = sqlx::query_scalar(
            "SELECT i.indexrelid::regclass::text FROM pg_index i \
             JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = $1 AND NOT i.indisvalid",
        )
        .bind(format!("traces_p{day}"))
        .fetch_all(&mut *pool)
        .await
        .map_err(backend_error)?;
        for index in leftovers {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {index}"
            )))
            .execute(&mut *pool)
            .await
            .map_err(backend_error)?;
        }
        for index in indexes {
            // The name comes from the catalog, quoted by regclass.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "REINDEX INDEX CONCURRENTLY {index}"
            )))
            .execute(&mut *pool)
            .await
            .map_err(backend_error)?;
        }
        sqlx::query("INSERT INTO compacted_days (day) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(day)
            .execute(&mut *pool)
            .await
            .map_err(backend_error)?;
        compacted += 1;
    }
    Ok(compacted)
}

pub(crate) async fn usage(store: &PgStore) -> Result<ShardUsage, StoreError> {
    let pool = store.pool();
    let total: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         WHERE c.relkind = 'r' AND (c.relname ~ '^(traces|chunks)_p[0-9]+$' \
           OR c.relname IN ('names', 'operations', 'usage'))",
    )
    .fetch_one(pool)
    .await
    .map_err(backend_error)?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT n.name, SUM(u.spans)::bigint, SUM(u.body_bytes)::bigint FROM usage u \
         JOIN names n ON n.id = u.cluster GROUP BY n.name ORDER BY n.name",
    )
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    let body_total: i64 = rows.iter().map(|r| r.2).sum();
    let total = u64::try_from(total).unwrap_or(0);
    let clusters: Vec<ClusterUsage> = rows
        .into_iter()
        .map(|(cluster, spans, body)| ClusterUsage {
            cluster,
            spans: u64::try_from(spans).unwrap_or(0),
            body_bytes: u64::try_from(body).unwrap_or(0),
            estimated_bytes: apportion(total, body, body_total),
        })
        .collect();
    Ok(ShardUsage {
        shard: store.name().to_owned(),
        total_bytes: total,
        spans: clusters.iter().map(|c| c.spans).sum(),
        clusters,
        error: None,
    })
}
