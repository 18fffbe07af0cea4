//! The embedded store: SQLite via sqlx, the default backend.
//!
//! Schema in `migrations/sqlite` (applied at open). WAL journal with
//! `synchronous=FULL`: `write` returns only once the batch is durable, which
//! is what the gateway's ack to agents promises.

mod codec;
mod read;
mod write;

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use model::{Span, SpanKind, Trace, TraceId, TraceQuery};
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{Operation, SpanStore, StoreError, WriteOutcome};

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
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect_with(&opts)
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening {url}: {e}")))?;
            sqlx::migrate!("../migrations/sqlite")
                .run(&mut conn)
                .await
                .map_err(|e| StoreError::Migration(e.to_string()))?;
            conn.close()
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening {url}: {e}")))?;
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
        sqlx::migrate!("../migrations/sqlite")
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

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }
}
