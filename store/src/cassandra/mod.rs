//! Cassandra (and ScyllaDB) backend, for the largest users.
//!
//! **Unverified**: no Cassandra server runs where this was written. The
//! pure parts (`url`, `schema`, `ttl`, `rows`, `plan`: nothing there
//! talks to a server) are unit-tested; the conformance suite runs against a server
//! only when `MERIDIAN_TEST_CASSANDRA=host:port` is set
//! (`store/tests/cassandra.rs`), and has not been run yet.
//!
//! # Schema
//! `migrations/cassandra/0001_schema.cql`, applied at every open (all
//! `IF NOT EXISTS`) after creating the keyspace of the URL
//! (`cassandra://[USER:PASSWORD@]HOST[:PORT][,…]/KEYSPACE[?replication_factor=N]`,
//! SimpleStrategy, RF 1 by default). Jaeger-like: `spans` is partitioned by
//! trace id and holds the compressed body; `service_names` and
//! `operation_names` serve the lists; `service_name_index`,
//! `service_operation_index`, `duration_index` (per hour) and `tag_index`
//! (only the indexed keys: [`crate::DEFAULT_INDEXED_TAGS`] plus
//! `StoreOptions::indexed_tags`) serve search; `usage` counts spans and body
//! bytes per cluster and day.
//!
//! # Writes
//! Idempotent by key: every row is an upsert, and index rows never depend on
//! anything random. A write first reads which of the batch's span ids are
//! already stored (`span_id IN ?` per trace) and skips them; the count of
//! duplicates is exact for one writer and best-effort under concurrent
//! writers of the same spans (both may count a span as inserted). Index and
//! name rows are written first, `spans` rows last, so a stored span always
//! has its index rows and a retry after a failure rewrites whatever is
//! missing. Rows go in unlogged batches, one partition per batch (never a
//! multi-partition batch), with bounded concurrency; the session's default
//! consistency (LOCAL_QUORUM) is what "committed" means.
//!
//! # Retention
//! Cell TTLs: each span and its index rows get the TTL of the span's
//! cluster (`RetentionPolicy::ttl_hours`, none when it keeps spans forever),
//! counted from the write, not from the span's start (unlike the SQL
//! backends' cutoff). Name rows get the longest TTL of any cluster. So
//! `enforce_retention` has nothing to do and reports nothing.
//!
//! # Search
//! `plan::plan` picks one index: an indexed, narrow tag; else the duration
//! index when the query has a duration range and a window of at most a week;
//! else service+operation; else a broad indexed tag (`span.kind`, …); else
//! the service index. Without a service the search fans out over every
//! service. Candidate trace ids within the window are merged newest first
//! (at most 20 × limit, at most 10,000), their traces loaded, and each
//! confirmed with `TraceQuery::matches_span`: one span must match every
//! filter, which is exact Jaeger semantics. Filters the chosen index does not
//! cover (unindexed tag keys, span kind, long duration windows) are checked
//! only there — the documented slow path. Traces are ranked by their latest
//! matching span; loading stops once no remaining candidate can rank higher.
//! When the candidate bound was hit and fewer traces than the limit were
//! found, [`SpanStore::search`] says so in its warnings.
//!
//! # Usage
//! `storage_usage` sums the `usage` counters of the days still within each
//! cluster's TTL: spans and compressed body bytes written (not replicas,
//! index tables or compaction overhead). Counters are not idempotent, so a
//! counter update retried by the driver or lost in a crash skews them.
//!
//! # Modules
//! Pure: `url` (the URL), `schema` (CQL text), `ttl` (retention as TTLs),
//! `rows` (the rows a span produces, batched by partition), `plan` (how a
//! search runs). Against the driver: `prepared` (the session's statements),
//! `exec` (running them), `error` (driver errors as [`StoreError`]s),
//! `write`, `read` and `search`.

mod error;
mod exec;
mod plan;
mod prepared;
mod read;
mod rows;
mod schema;
mod search;
mod ttl;
mod url;
mod write;

use std::time::Duration;

use async_trait::async_trait;
use model::{RetentionPolicy, Span, SpanKind, Trace, TraceId, TraceQuery, access::Scope};
use scylla::{
    client::{session::Session, session_builder::SessionBuilder},
    errors::ExecutionError,
};

use self::{
    error::{exec_error, session_error},
    prepared::Prepared,
    rows::IndexedTags,
};
use crate::{
    Operation, RetentionReport, SearchResult, ShardUsage, SpanStore, StoreError, StoreOptions,
    WriteOutcome,
};

/// Requests in flight per store call.
const CONCURRENCY: usize = 32;
/// Span ids per `span_id IN ?` read.
const IN_LIST: usize = 100;
/// Name rows are rewritten (refreshing their TTL) at most this often.
const NAMES_CACHE_TTL: Duration = Duration::from_secs(600);

/// The Cassandra backend.
#[derive(Debug)]
pub struct CassandraStore {
    session: Session,
    stmts: Prepared,
    retention: RetentionPolicy,
    indexed: IndexedTags,
    /// Service and operation names written recently.
    names: moka::future::Cache<String, ()>,
}

impl CassandraStore {
    /// Connects to the URL's contact points, creates the keyspace and schema
    /// when missing, and prepares every statement.
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let config = url::parse_url(url)?;
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .connection_timeout(Duration::from_secs(5));
        if let Some((user, password)) = &config.credentials {
            builder = builder.user(user, password);
        }
        let session = Box::pin(builder.build()).await.map_err(session_error)?;
        let migration = |e: ExecutionError| match exec_error(e) {
            StoreError::Backend(m) => StoreError::Migration(m),
            other => other,
        };
        session
            .query_unpaged(
                schema::create_keyspace(&config.keyspace, config.replication_factor),
                (),
            )
            .await
            .map_err(migration)?;
        session
            .use_keyspace(config.keyspace.as_str(), false)
            .await
            .map_err(|e| StoreError::Migration(format!("using the keyspace: {e}")))?;
        for statement in schema::schema_statements(schema::SCHEMA) {
            session
                .query_unpaged(statement, ())
                .await
                .map_err(migration)?;
        }
        let stmts = Prepared::new(&session, &schema::Statements::new(&config.keyspace)).await?;
        Ok(Self {
            session,
            stmts,
            retention: opts.retention.clone(),
            indexed: IndexedTags::new(&opts.indexed_tags),
            names: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(NAMES_CACHE_TTL)
                .build(),
        })
    }
}

#[async_trait]
impl SpanStore for CassandraStore {
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
        self.write_spans(spans).await
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        Ok(self.load_traces(&[trace_id]).await?.pop())
    }

    async fn get_trace_capped(
        &self,
        trace_id: TraceId,
        cap: usize,
    ) -> Result<Option<crate::CappedTrace>, StoreError> {
        self.load_trace_capped(trace_id, cap).await
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        Ok(self.search_inner(query).await?.0)
    }

    async fn search(&self, query: &TraceQuery) -> Result<SearchResult, StoreError> {
        self.search_with_warnings(query).await
    }

    async fn services(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        self.list_services(scope).await
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
        scope: &Scope,
    ) -> Result<Vec<Operation>, StoreError> {
        self.list_operations(service, span_kind, scope).await
    }

    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        self.usage().await
    }

    /// Nothing to do: every row carries the TTL of its cluster from the
    /// moment it is written, and Cassandra drops expired cells in
    /// compaction. A changed policy applies to new writes only.
    async fn enforce_retention(
        &self,
        _policy: &RetentionPolicy,
        _now_unix_nano: u64,
    ) -> Result<RetentionReport, StoreError> {
        Ok(RetentionReport::default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.exec(&self.stmts.ping, Vec::new()).await
    }
}
