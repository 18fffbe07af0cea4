//! A scripted `SpanStore` for handler and job tests.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use crate::{
    Operation, RetentionReport, SearchResult, ShardUsage, SpanStore, StoreError, WriteOutcome,
};
use async_trait::async_trait;
use model::{RetentionPolicy, Span, SpanKind, Trace, TraceId, TraceQuery, access::Scope};

/// What `enforce_retention` does.
#[derive(Debug, Clone, Default)]
pub enum RetentionBehaviour {
    #[default]
    Nothing,
    Report(RetentionReport),
    Fail,
    /// Never returns (a pass stuck on a slow shard).
    Hang,
}

/// Answers searches and usage with what a test set; counts retention calls.
#[derive(Debug, Default)]
pub struct FakeStore {
    search: Mutex<Option<Result<SearchResult, String>>>,
    usage: Mutex<Option<Result<Vec<ShardUsage>, String>>>,
    retention: Mutex<RetentionBehaviour>,
    retention_calls: AtomicU64,
    /// Searches never return (a shard that stopped answering).
    search_hangs: std::sync::atomic::AtomicBool,
}

fn unavailable(msg: &str) -> StoreError {
    StoreError::Unavailable(msg.to_owned())
}

impl FakeStore {
    /// `Err(msg)` answers with `StoreError::Unavailable(msg)`.
    pub fn set_search(&self, r: Result<SearchResult, String>) {
        *self.search.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    pub fn set_usage(&self, r: Result<Vec<ShardUsage>, String>) {
        *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    pub fn set_retention(&self, b: RetentionBehaviour) {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner()) = b;
    }

    /// Every search from now on never returns.
    pub fn hang_searches(&self) {
        self.search_hangs.store(true, Ordering::SeqCst);
    }

    pub fn retention_calls(&self) -> u64 {
        self.retention_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SpanStore for FakeStore {
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
        Ok(WriteOutcome {
            inserted: spans.len() as u64,
            duplicates: 0,
        })
    }

    async fn get_trace(&self, _trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        Ok(None)
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        let r = self.search(query).await?;
        if r.warnings.is_empty() {
            Ok(r.traces)
        } else {
            Err(unavailable(&r.warnings.join("; ")))
        }
    }

    async fn search(&self, _query: &TraceQuery) -> Result<SearchResult, StoreError> {
        if self.search_hangs.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        match self
            .search
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(Ok(r)) => Ok(r),
            Some(Err(m)) => Err(unavailable(&m)),
            None => Ok(SearchResult::default()),
        }
    }

    async fn services(&self, _scope: &Scope) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn operations(
        &self,
        _service: &str,
        _span_kind: Option<SpanKind>,
        _scope: &Scope,
    ) -> Result<Vec<Operation>, StoreError> {
        Ok(Vec::new())
    }

    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        match self.usage.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(Ok(u)) => Ok(u),
            Some(Err(m)) => Err(unavailable(&m)),
            None => Ok(Vec::new()),
        }
    }

    async fn enforce_retention(
        &self,
        _policy: &RetentionPolicy,
        _now_unix_nano: u64,
    ) -> Result<RetentionReport, StoreError> {
        self.retention_calls.fetch_add(1, Ordering::SeqCst);
        let behaviour = self
            .retention
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match behaviour {
            RetentionBehaviour::Nothing => Ok(RetentionReport::default()),
            RetentionBehaviour::Report(r) => Ok(r),
            RetentionBehaviour::Fail => Err(unavailable("shard 1: connection refused")),
            RetentionBehaviour::Hang => std::future::pending().await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
