//! Postgres backend: one database per shard (`--store postgres://…,…`);
//! [`crate::shard::ShardedStore`] routes traces to shards.
//!
//! Schema and the reasons behind it: `migrations/postgres/0001_init.sql`
//! (applied at open; sqlx takes an advisory lock, so gateways starting
//! together do not race). In short:
//! - `chunks`: the spans of one trace from one cluster in one write, as
//!   one zstd-compressed body. Read whole for trace-by-id.
//! - `traces`: one summary row per trace and day, with a GIN-indexed array
//!   of search-term hashes and the stored span ids (idempotency).
//! - `names`, `operations`: dictionaries for services, clusters and
//!   operations; `usage`: spans and body bytes per day and cluster.
//! - `traces` and `chunks` are partitioned by day; retention drops whole
//!   partitions and deletes row by row only in the partly expired edge.
//!
//! Search narrows candidates in SQL (time window, terms, max duration) and
//! confirms each on the decoded spans ([`TraceQuery::matches_span`]), so
//! results have exactly the semantics of the embedded store. Tags on
//! unindexed keys are found by that confirmation alone: correct, but it
//! scans every trace of the window (bounded; a warning says when the bound
//! stopped the scan).

#[cfg(feature = "testsuite")]
pub mod bench;
// Binary COPY rows: only the benchmarks' raw-COPY ceiling writes them now
// (write.rs explains why the write path does not COPY).
#[cfg(feature = "testsuite")]
mod copy;
mod dictionary;
mod error;
mod partitions;
mod read;
mod records;
mod retention;
mod stored;
mod terms;
mod write;

#[cfg(feature = "testsuite")]
pub use bench::CeilingRows;
pub(crate) use error::backend_error;
pub(crate) use partitions::{DAY_NANOS, day_of, day_range, today};

use std::{collections::BTreeSet, str::FromStr, time::Duration};

use async_trait::async_trait;
use model::{RetentionPolicy, Span, SpanKind, Trace, TraceId, TraceQuery, access::Scope};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::Mutex;

use crate::{
    Operation, RetentionReport, SearchResult, ShardUsage, SpanStore, StoreError, StoreOptions,
    WriteOutcome,
};

/// The Postgres backend for one shard.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    name: String,
    indexed: terms::IndexedTags,
    dict: dictionary::Dictionary,
    /// Days whose partitions exist (created by us or found at open).
    partitions: Mutex<BTreeSet<i32>>,
    /// Longest (last_ns - first_ns) of a summary row per day that this
    /// process recorded in `day_extent` (a lower bound of the table's).
    extents: Mutex<std::collections::HashMap<i32, i64>>,
    /// Set once the migrations ran and the partitions are known.
    ready: tokio::sync::OnceCell<()>,
}

/// Nanoseconds beyond i64 (the year 2262) are clamped in columns; the
/// body keeps the exact value.
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects to shard `index` at `url` and applies the migrations. A
    /// shard that cannot be reached is not an error here: it is migrated
    /// when it first answers, and refuses work (retryably) until then.
    pub async fn open(index: usize, url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Config(format!(
                    "invalid postgres url {}: {e}",
                    crate::describe(&[url.to_owned()])
                ))
            })?
            .application_name("meridian-gateway")
            // Bounds every statement: a search cannot hold a connection
            // forever, and a stuck shard turns into a retryable error.
            .options([
                ("statement_timeout", "30s"),
                ("lock_timeout", "10s"),
                // Whether a search is cheaper through the GIN index or the
                // newest-first walk depends on how common its terms are:
                // plan with the actual values every time (a cached generic
                // plan cannot know them). Writes pay ~0.1 ms per batch.
                ("plan_cache_mode", "force_custom_plan"),
            ]);
        let name = format!(
            "{index} ({}/{})",
            connect.get_host(),
            connect.get_database().unwrap_or("postgres")
        );
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_lazy_with(connect);
        let store = Self {
            pool,
            name,
            indexed: terms::IndexedTags::new(&opts.indexed_tags),
            dict: dictionary::Dictionary::new(),
            partitions: Mutex::new(BTreeSet::new()),
            extents: Mutex::new(std::collections::HashMap::new()),
            ready: tokio::sync::OnceCell::new(),
        };
        match store.ready().await {
            Ok(()) => {}
            // A gateway (re)started during a shard outage serves the other
            // shards; this one migrates when it first answers.
            Err(StoreError::Unavailable(error)) => tracing::warn!(
                shard = %store.name,
                %error,
                "shard unreachable at start: its traces are refused until it answers"
            ),
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// Migrates and learns the partitions, once, on first success.
    async fn ready(&self) -> Result<(), StoreError> {
        self.ready
            .get_or_try_init(|| async {
                crate::migrations::postgres()
                    .run(&self.pool)
                    .await
                    .map_err(|e| match e {
                        sqlx::migrate::MigrateError::Execute(e) => match backend_error(e) {
                            StoreError::Unavailable(m) => {
                                StoreError::Unavailable(format!("shard {}: {m}", self.name))
                            }
                            other => StoreError::Migration(other.to_string()),
                        },
                        other => StoreError::Migration(other.to_string()),
                    })?;
                let days = retention::partition_days(&self.pool).await?;
                self.partitions.lock().await.extend(days);
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl SpanStore for PgStore {
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
        self.ready().await?;
        write::write(self, spans).await
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        self.ready().await?;
        let mut traces = read::load_traces(&self.pool, &[trace_id]).await?;
        Ok(traces.pop())
    }

    async fn get_trace_capped(
        &self,
        trace_id: TraceId,
        cap: usize,
    ) -> Result<Option<crate::CappedTrace>, StoreError> {
        self.ready().await?;
        read::load_trace_capped(&self.pool, trace_id, cap).await
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        let result = self.search(query).await?;
        Ok(result.traces)
    }

    async fn search(&self, query: &TraceQuery) -> Result<SearchResult, StoreError> {
        self.ready().await?;
        read::search(self, query).await
    }

    async fn services(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        self.ready().await?;
        read::services(&self.pool, scope).await
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
        scope: &Scope,
    ) -> Result<Vec<Operation>, StoreError> {
        self.ready().await?;
        read::operations(&self.pool, service, span_kind, scope).await
    }

    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        self.ready().await?;
        Ok(vec![retention::usage(self).await?])
    }

    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_unix_nano: u64,
    ) -> Result<RetentionReport, StoreError> {
        self.ready().await?;
        retention::enforce(self, policy, now_unix_nano).await
    }

    async fn put_records(&self, records: &[crate::Record]) -> Result<(), StoreError> {
        self.ready().await?;
        records::put(&self.pool, records).await
    }

    async fn scan_records(
        &self,
        scan: &crate::RecordScan,
    ) -> Result<Vec<crate::Record>, StoreError> {
        self.ready().await?;
        records::scan(&self.pool, scan).await
    }

    async fn delete_records(
        &self,
        kind: crate::RecordKind,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        self.ready().await?;
        records::delete(&self.pool, kind, before_ms).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.ready().await?;
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }
}
