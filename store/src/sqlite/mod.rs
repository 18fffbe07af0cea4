//! The embedded store: SQLite via sqlx, the default backend.
//!
//! Schema in `migrations/sqlite` (applied at open). WAL journal with
//! `synchronous=FULL`: `write` returns only once the batch is durable, which
//! is what the gateway's ack to agents promises.

mod read;
mod records;
mod write;

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use model::{Span, SpanKind, Trace, TraceId, TraceQuery};
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use model::RetentionPolicy;

use crate::{
    ClusterUsage, Operation, RetentionReport, ShardUsage, SpanStore, StoreError, WriteOutcome,
};

/// The SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

pub(crate) fn backend_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file and its directory) or
    /// `sqlite::memory:`, and applies migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:");
        let mut opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid sqlite url {url:?}: {e}")))?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(10))
            .synchronous(SqliteSynchronous::Full);
        if !memory {
            opts = opts.journal_mode(SqliteJournalMode::Wal);
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .map(|p| p.split('?').next().unwrap_or(p))
                .map(std::path::Path::new)
                .and_then(|p| p.parent())
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(path).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", path.display()))
                })?;
            }
        }
        if !memory {
            // One connection first switches the file to WAL and migrates:
            // several pool connections racing to change the journal mode
            // of a new file can fail with SQLITE_BUSY ("database is
            // locked") without waiting for the busy timeout.
            // (A pool of one: the migrator's future over a bare
            // connection cannot be proven `Send`, and `store::open` is a
            // boxed `Send` future.)
            let first = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening {url}: {e}")))?;
            crate::migrations::sqlite()
                .run(&first)
                .await
                .map_err(|e| StoreError::Migration(e.to_string()))?;
            first.close().await;
        }
        // Every connection to `:memory:` is a separate database: use one.
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening {url}: {e}")))?;
        crate::migrations::sqlite()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl SpanStore for SqliteStore {
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
        write::write(&self.pool, spans).await
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        let mut traces = read::load_traces(&self.pool, &[trace_id]).await?;
        Ok(traces.pop())
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        let ids = read::find_trace_ids(&self.pool, query).await?;
        read::load_traces(&self.pool, &ids).await
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>("SELECT DISTINCT service FROM operations ORDER BY service")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let rows: Vec<(String, i64)> = match span_kind {
            Some(kind) => sqlx::query_as(
                "SELECT name, span_kind FROM operations WHERE service = ? AND span_kind = ? ORDER BY name, span_kind",
            )
            .bind(service)
            .bind(i64::from(kind.as_i32()))
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query_as(
                "SELECT name, span_kind FROM operations WHERE service = ? ORDER BY name, span_kind",
            )
            .bind(service)
            .fetch_all(&self.pool)
            .await,
        }
        .map_err(backend_error)?;
        Ok(rows
            .into_iter()
            .map(|(name, kind)| Operation {
                name,
                span_kind: SpanKind::from_otlp(kind as i32),
            })
            .collect())
    }

    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT cluster, COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM spans GROUP BY cluster ORDER BY cluster",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        let (pages, page_size): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT page_size FROM pragma_page_size())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend_error)?;
        let total = u64::try_from(pages.saturating_mul(page_size)).unwrap_or(0);
        let body_total: i64 = rows.iter().map(|r| r.2).sum();
        let clusters = rows
            .into_iter()
            .map(|(cluster, spans, body)| ClusterUsage {
                cluster,
                spans: u64::try_from(spans).unwrap_or(0),
                body_bytes: u64::try_from(body).unwrap_or(0),
                estimated_bytes: crate::usage::apportion(total, body, body_total),
            })
            .collect::<Vec<_>>();
        Ok(vec![ShardUsage {
            shard: "0 (sqlite)".into(),
            total_bytes: total,
            spans: clusters.iter().map(|c| c.spans).sum(),
            clusters,
            error: None,
        }])
    }

    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_unix_nano: u64,
    ) -> Result<RetentionReport, StoreError> {
        let clusters: Vec<String> = sqlx::query_scalar("SELECT DISTINCT cluster FROM spans")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        let mut report = RetentionReport::default();
        for cluster in clusters {
            let Some(cutoff) = policy.cutoff(&cluster, now_unix_nano) else {
                continue;
            };
            let cutoff = i64::try_from(cutoff).unwrap_or(i64::MAX);
            let mut tx = self.pool.begin().await.map_err(backend_error)?;
            sqlx::query(
                "DELETE FROM span_tags WHERE EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = span_tags.trace_id \
                 AND s.span_id = span_tags.span_id AND s.cluster = ? AND s.start_ns < ?)",
            )
            .bind(&cluster)
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
            let done = sqlx::query("DELETE FROM spans WHERE cluster = ? AND start_ns < ?")
                .bind(&cluster)
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            tx.commit().await.map_err(backend_error)?;
            report.spans_deleted += done.rows_affected();
        }
        // Derived records (summaries, edges, backlinks) live as long as the
        // longest-kept spans.
        if let Some(cutoff) = policy.global_cutoff(now_unix_nano) {
            records::expire(
                &self.pool,
                i64::try_from(cutoff / 1_000_000).unwrap_or(i64::MAX),
            )
            .await?;
        }
        Ok(report)
    }

    async fn put_records(&self, records: &[crate::Record]) -> Result<(), StoreError> {
        records::put(&self.pool, records).await
    }

    async fn scan_records(
        &self,
        scan: &crate::RecordScan,
    ) -> Result<Vec<crate::Record>, StoreError> {
        records::scan(&self.pool, scan).await
    }

    async fn delete_records(
        &self,
        kind: crate::RecordKind,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        records::delete(&self.pool, kind, before_ms).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }
}
