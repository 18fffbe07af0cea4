//! Span storage.
//!
//! [`SpanStore`] is the one interface the gateway uses. Every backend passes
//! the same conformance suite (`testsuite::run_all`, compiled only with the
//! `testsuite` feature, which tests and benchmarks enable):
//! - `sqlite` — embedded, the default (`sqlite://PATH`), no server needed;
//! - `postgres` — one URL per shard, routed by trace id ([`shard`]);
//! - `cassandra` — for the largest users (unverified here: no server).
//!
//! Only this crate knows SQL/CQL.

pub mod cassandra;
mod chunk;
mod codec;
mod error;
mod migrations;
pub mod postgres;
pub mod records;
pub mod shard;
pub mod sqlite;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
mod usage;

/// The decoders of bytes read back from a database, for the fuzz targets
/// (`fuzz/`, feature `fuzzing`, which no binary enables).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use model::Span;

    use crate::StoreError;

    /// Decodes a Postgres chunk body (`chunk`): its spans.
    pub fn decode_chunk(body: &[u8]) -> Result<Vec<Span>, StoreError> {
        crate::chunk::ChunkDecoder::new()?.decode(body)
    }

    /// Encodes spans as a chunk body (for seed corpora).
    pub fn encode_chunk(spans: &[&Span]) -> Result<Vec<u8>, StoreError> {
        crate::chunk::ChunkEncoder::new(1)?.encode(spans)
    }

    /// Decodes a span body (`codec`: JSON, zstd) as SQLite and Cassandra
    /// store them.
    pub fn decode_body(body: &[u8]) -> Result<Span, StoreError> {
        crate::codec::Decoder::new()?.decode(body)
    }

    /// Encodes a span body (for seed corpora).
    pub fn encode_body(span: &Span) -> Result<Vec<u8>, StoreError> {
        crate::codec::Encoder::new()?.encode(span)
    }
}

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use model::{RetentionPolicy, Span, SpanKind, Trace, TraceId, TraceQuery, access::Scope};
use serde::Serialize;

pub use error::StoreError;
pub use records::{RED_KINDS, Record, RecordKind, RecordScan};
pub use usage::{ClusterUsage, ShardUsage};

/// A service operation as the Jaeger API lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    pub name: String,
    pub span_kind: SpanKind,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// Spans newly stored.
    pub inserted: u64,
    /// Spans already present (a replay); not stored twice.
    pub duplicates: u64,
}

/// A search answer. `warnings` is non-empty when part of the store could
/// not answer (a shard down) or the search stopped early: the traces are
/// then a partial result, which the Jaeger API reports in `errors`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    pub traces: Vec<Trace>,
    pub warnings: Vec<String>,
}

/// A trace loaded under a span cap: at most the cap's spans (the
/// earliest, by start time), and whether the store holds more.
#[derive(Debug, Clone, PartialEq)]
pub struct CappedTrace {
    pub trace: Trace,
    /// Spans were left out.
    pub truncated: bool,
}

impl CappedTrace {
    /// Caps a trace already loaded whole (spans sorted by start time).
    pub fn cap(mut trace: Trace, cap: usize) -> Self {
        let truncated = trace.spans.len() > cap;
        trace.spans.truncate(cap);
        Self { trace, truncated }
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RetentionReport {
    /// Whole time partitions dropped.
    pub partitions_dropped: u64,
    /// Spans deleted row by row (partitions that are only partly expired).
    pub spans_deleted: u64,
    /// Sealed time partitions whose search index was rebuilt compactly.
    pub partitions_compacted: u64,
}

/// Options every backend honours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreOptions {
    /// Per-cluster TTLs. Cassandra applies them at write time (cell TTL);
    /// the SQL backends in [`SpanStore::enforce_retention`].
    pub retention: RetentionPolicy,
    /// Tag keys indexed for fast `key=value` search, on top of
    /// [`DEFAULT_INDEXED_TAGS`]. Other keys are searched by scanning
    /// candidate traces (slower, bounded by the time window).
    pub indexed_tags: Vec<String>,
}

/// Tag keys every backend indexes for search.
pub const DEFAULT_INDEXED_TAGS: &[&str] = &[
    "error",
    "otel.status_code",
    "span.kind",
    "http.status_code",
    "http.response.status_code",
    "http.method",
    "http.request.method",
    "http.route",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
    "db.system",
    "messaging.system",
    "peer.service",
    "k8s.cluster.name",
    "k8s.namespace.name",
];

/// Storage for spans. Implementations must be safe to share across tasks.
#[async_trait]
pub trait SpanStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `spans` and returns only once they are committed durably.
    /// Idempotent on (trace_id, span_id): a span written twice is stored
    /// once. On error the caller retries the whole batch (spans already
    /// stored are then counted as duplicates).
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError>;

    /// Every stored span of a trace, or `None` when none is stored.
    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError>;

    /// At most `cap` spans of a trace (the earliest by start time) and
    /// whether more are stored, or `None` when none is stored. Backends
    /// read no more than about `cap` spans, so memory is bounded by the
    /// cap, not by the trace; this default reads the whole trace first.
    async fn get_trace_capped(
        &self,
        trace_id: TraceId,
        cap: usize,
    ) -> Result<Option<CappedTrace>, StoreError> {
        Ok(self
            .get_trace(trace_id)
            .await?
            .map(|t| CappedTrace::cap(t, cap)))
    }

    /// Traces with at least one span matching every filter of `query`, most
    /// recent first (by the matching span's start), at most `query.limit`.
    /// The matching span must be of a cluster in `query.scope`, checked in
    /// the store's query before the limit applies: a trace with no span in
    /// scope is never returned nor counted. Each returned trace carries all
    /// its stored spans (the query layer hides the out-of-scope ones).
    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError>;

    /// [`find_traces`](Self::find_traces), but a store made of parts
    /// answers with what the reachable parts hold and says what is missing.
    async fn search(&self, query: &TraceQuery) -> Result<SearchResult, StoreError> {
        Ok(SearchResult {
            traces: self.find_traces(query).await?,
            warnings: Vec::new(),
        })
    }

    /// Names of the services seen in a cluster of `scope`, sorted.
    async fn services(&self, scope: &Scope) -> Result<Vec<String>, StoreError>;

    /// Operations a service had in a cluster of `scope`, sorted,
    /// optionally only of one span kind.
    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
        scope: &Scope,
    ) -> Result<Vec<Operation>, StoreError>;

    /// Storage used, per shard and cluster.
    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError>;

    /// Deletes what `policy` says is expired at `now_unix_nano`.
    /// Idempotent: running it twice removes nothing more the second time.
    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_unix_nano: u64,
    ) -> Result<RetentionReport, StoreError>;

    /// Cheap liveness check of the backend (used by `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores derived [`Record`]s, replacing any with the same kind and key.
    /// Returns once they are committed.
    async fn put_records(&self, records: &[Record]) -> Result<(), StoreError> {
        let _ = records;
        Err(StoreError::Unsupported(
            "derived records (trace summaries, service edges, clock offsets, backlinks)".into(),
        ))
    }

    /// Reads derived records, in key order.
    async fn scan_records(&self, scan: &RecordScan) -> Result<Vec<Record>, StoreError> {
        let _ = scan;
        Err(StoreError::Unsupported(
            "derived records (trace summaries, service edges, clock offsets, backlinks)".into(),
        ))
    }

    /// Deletes the records of `kind` older than `before_ms` (RED metrics
    /// retention per resolution); returns how many.
    async fn delete_records(&self, kind: RecordKind, before_ms: i64) -> Result<u64, StoreError> {
        let _ = (kind, before_ms);
        Err(StoreError::Config(
            "this store backend keeps no federation records".into(),
        ))
    }
}

/// The store URLs for logs: backend, shard count and hosts/databases,
/// never user names or passwords.
pub fn describe(urls: &[String]) -> String {
    let parts: Vec<String> = urls
        .iter()
        .map(|u| match u.split_once("://") {
            Some((scheme, rest)) => {
                let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                let rest = rest.split('?').next().unwrap_or(rest);
                format!("{scheme}://{rest}")
            }
            None => u.split('?').next().unwrap_or(u).to_owned(),
        })
        .collect();
    parts.join(",")
}

/// The `open*` entry points return boxed futures: a crate that awaits a
/// concrete `async fn` future compiles that future's whole call tree
/// again (drivers included), so the boxes keep it compiled here, once
/// (ARCHITECTURE.md, "Build time").
///
/// Opens Postgres shards `urls[i]` as shard `i`, under a one-epoch map
/// (the gateway cluster replaces it with the replicated map).
#[inline(never)]
pub fn open_sharded<'a>(
    urls: &'a [String],
    opts: &'a StoreOptions,
) -> BoxFuture<'a, Result<Arc<shard::ShardedStore>, StoreError>> {
    Box::pin(open_sharded_inner(urls, opts))
}

async fn open_sharded_inner(
    urls: &[String],
    opts: &StoreOptions,
) -> Result<Arc<shard::ShardedStore>, StoreError> {
    let mut shards: Vec<Arc<dyn SpanStore>> = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        shards.push(open_shard(i, url, opts).await?);
    }
    Ok(Arc::new(shard::ShardedStore::new(
        shard::ShardMap::single_epoch(urls.len())?,
        shards,
    )?))
}

/// Opens one Postgres shard (a shard added to the cluster's map).
#[inline(never)]
pub fn open_shard<'a>(
    id: usize,
    url: &'a str,
    opts: &'a StoreOptions,
) -> BoxFuture<'a, Result<Arc<dyn SpanStore>, StoreError>> {
    Box::pin(async move {
        let store: Arc<dyn SpanStore> = Arc::new(postgres::PgStore::open(id, url, opts).await?);
        Ok(store)
    })
}

/// Opens the backend the store URLs name:
/// - `sqlite://PATH` (created when missing) or `sqlite::memory:`;
/// - one or more `postgres://…` URLs, one per shard;
/// - `cassandra://HOST:PORT[,HOST:PORT…]/KEYSPACE`.
#[inline(never)]
pub fn open<'a>(
    urls: &'a [String],
    opts: &'a StoreOptions,
) -> BoxFuture<'a, Result<Arc<dyn SpanStore>, StoreError>> {
    Box::pin(open_inner(urls, opts))
}

async fn open_inner(
    urls: &[String],
    opts: &StoreOptions,
) -> Result<Arc<dyn SpanStore>, StoreError> {
    let first = urls
        .first()
        .ok_or_else(|| StoreError::Config("no store url given".into()))?;
    let scheme = first.split(':').next().unwrap_or_default();
    if urls.iter().any(|u| !u.starts_with(scheme)) {
        return Err(StoreError::Config(
            "every store url must use the same backend".into(),
        ));
    }
    match scheme {
        "sqlite" if urls.len() == 1 => Ok(Arc::new(sqlite::SqliteStore::open(first).await?)),
        "sqlite" => Err(StoreError::Config(
            "the embedded store has one file; use postgres:// urls to shard".into(),
        )),
        "postgres" | "postgresql" => Ok(open_sharded(urls, opts).await?),
        "cassandra" if urls.len() == 1 => Ok(Arc::new(
            cassandra::CassandraStore::open(first, opts).await?,
        )),
        "cassandra" => Err(StoreError::Config(
            "give one cassandra:// url; list several contact points inside it".into(),
        )),
        _ => Err(StoreError::Config(format!(
            "unsupported store url {first:?}: use sqlite://PATH, postgres://… or cassandra://…"
        ))),
    }
}
