//! Span storage.
//!
//! [`SpanStore`] is the one interface the gateway uses. Every backend passes
//! the same conformance suite ([`testsuite::run_all`]):
//! - `sqlite` — embedded, the default (`sqlite://PATH`), no server needed;
//! - `postgres` — one URL per shard (the storage issue);
//! - `cassandra` — for the largest users (the storage issue).
//!
//! Only this crate knows SQL/CQL.

mod error;
pub mod sqlite;
pub mod testsuite;

use std::sync::Arc;

use async_trait::async_trait;
use model::{Span, SpanKind, Trace, TraceId, TraceQuery};

pub use error::StoreError;

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

/// Storage for spans. Implementations must be safe to share across tasks.
#[async_trait]
pub trait SpanStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `spans` and returns only once they are committed durably.
    /// Idempotent on (trace_id, span_id): a span written twice is stored
    /// once. All or nothing: on error, the caller retries the whole batch.
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError>;

    /// Every stored span of a trace, or `None` when none is stored.
    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError>;

    /// Traces with at least one span matching every filter of `query`, most
    /// recent first (by the matching span's start), at most `query.limit`.
    /// Each returned trace carries all its stored spans.
    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError>;

    /// Service names, sorted.
    async fn services(&self) -> Result<Vec<String>, StoreError>;

    /// Operations of a service, sorted, optionally only of one span kind.
    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError>;

    /// Cheap liveness check of the backend (used by `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the backend a store URL names: `sqlite://PATH` (created when
/// missing) or `sqlite::memory:`.
pub async fn open(url: &str) -> Result<Arc<dyn SpanStore>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::open(url).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::Config(format!(
        "unsupported store url {url:?}: use sqlite://PATH"
    )))
}
