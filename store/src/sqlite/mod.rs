//! The embedded store: SQLite via sqlx, the default backend.
//!
//! Schema in `migrations/sqlite` (applied at open). WAL journal with
//! `synchronous=FULL`: `write` returns only once the batch is durable, which
//! is what the gateway's ack to agents promises.
//!
//! Reads and writes use separate pools, and reads run under a deadline
//! ([`pools`]): a slow search can neither run forever nor take the
//! connections ingest needs.

mod pools;
mod read;
mod records;
#[cfg(test)]
mod tests;
mod write;

pub use pools::SqliteLimits;

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use model::{Span, SpanKind, Trace, TraceId, TraceQuery, access::Scope};
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use model::RetentionPolicy;

use crate::{
    CappedTrace, ClusterUsage, Operation, RetentionReport, ShardUsage, SpanStore, StoreError,
    WriteOutcome,
};
use pools::ReadConn;

/// The SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Writes, retention, record updates, `ping`.
    pool: SqlitePool,
    /// Searches, trace loads, record scans; the same pool as `pool` for
    /// `:memory:`.
    read: SqlitePool,
    /// Per read statement; `None` for `:memory:` (its one connection is
    /// shared with writes, which must not inherit a read's deadline).
    read_deadline: Option<Duration>,
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
    /// `sqlite::memory:`, and applies migrations, with the default limits.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, SqliteLimits::default()).await
    }

    /// [`open`](Self::open) with explicit pool sizes and read deadline.
    pub async fn open_with(url: &str, limits: SqliteLimits) -> Result<Self, StoreError> {
        if limits.write_connections == 0 || limits.read_connections == 0 {
            return Err(StoreError::Config(
                "sqlite pools need at least one connection each".into(),
            ));
        }
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
        let pool_of = |size: u32| {
            SqlitePoolOptions::new()
                .max_connections(size)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
        };
        // Every connection to `:memory:` is a separate database: use one.
        let pool = pool_of(if memory { 1 } else { limits.write_connections })
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening {url}: {e}")))?;
        crate::migrations::sqlite()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let (read, read_deadline) = if memory {
            (pool.clone(), None)
        } else {
            let read = pool_of(limits.read_connections)
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening {url}: {e}")))?;
            (read, Some(limits.read_deadline))
        };
        Ok(Self {
            pool,
            read,
            read_deadline,
        })
    }

    /// A connection of the read pool, under the read deadline.
    async fn reader(&self) -> Result<ReadConn, StoreError> {
        ReadConn::acquire(&self.read, self.read_deadline).await
    }
}

#[async_trait]
impl SpanStore for SqliteStore {
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
        write::write(&self.pool, spans).await
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        let mut r = self.reader().await?;
        let traces = read::load_traces(r.conn(), &[trace_id]).await;
        Ok(r.check(traces)?.pop())
    }

    async fn get_trace_capped(
        &self,
        trace_id: TraceId,
        cap: usize,
    ) -> Result<Option<CappedTrace>, StoreError> {
        let mut r = self.reader().await?;
        let trace = read::load_trace_capped(r.conn(), trace_id, cap).await;
        r.check(trace)
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        let mut r = self.reader().await?;
        let ids = read::find_trace_ids(r.conn(), query).await;
        let ids = r.check(ids)?;
        let traces = read::load_traces(r.conn(), &ids).await;
        r.check(traces)
    }

    async fn services(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        let mut r = self.reader().await?;
        let names = read::services(r.conn(), scope).await;
        r.check(names)
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
        scope: &Scope,
    ) -> Result<Vec<Operation>, StoreError> {
        let mut r = self.reader().await?;
        let ops = read::operations(r.conn(), service, span_kind, scope).await;
        r.check(ops)
    }

    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        let mut r = self.reader().await?;
        let rows: Result<Vec<(String, i64, i64)>, _> = sqlx::query_as(
            "SELECT cluster, COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM spans GROUP BY cluster ORDER BY cluster",
        )
        .fetch_all(r.conn())
        .await
        .map_err(backend_error);
        let rows = r.check(rows)?;
        let pages: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT page_size FROM pragma_page_size())",
        )
        .fetch_one(r.conn())
        .await
        .map_err(backend_error);
        let (pages, page_size) = r.check(pages)?;
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
        let mut r = self.reader().await?;
        let records = records::scan(r.conn(), scan).await;
        r.check(records)
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
