//! The store over several shards: writes routed by the [`ShardMap`],
//! reads fanned out to every shard that may hold the answer and merged.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use futures::future::join_all;
use model::{RetentionPolicy, Span, SpanKind, Trace, TraceId, TraceQuery, access::Scope};
use telemetry::clock::unix_nanos;

use model::shard::{ShardId, ShardMap};

use super::merge::{merge_into, merge_search, union};
use crate::{
    CappedTrace, Operation, RetentionReport, SearchResult, ShardUsage, SpanStore, StoreError,
    WriteOutcome,
};

/// The shard map and the open shards, replaced as a whole when the map
/// changes (a new epoch, new shards).
#[derive(Debug)]
struct Layout {
    map: ShardMap,
    shards: BTreeMap<ShardId, Arc<dyn SpanStore>>,
}

impl Layout {
    fn new(
        map: ShardMap,
        shards: BTreeMap<ShardId, Arc<dyn SpanStore>>,
    ) -> Result<Self, StoreError> {
        if let Some(missing) = map
            .all_shards()
            .into_iter()
            .find(|s| !shards.contains_key(s))
        {
            return Err(StoreError::Config(format!(
                "the shard map names shard {missing}, which is not open"
            )));
        }
        Ok(Self { map, shards })
    }

    fn shard(&self, id: ShardId) -> Result<&Arc<dyn SpanStore>, StoreError> {
        self.shards
            .get(&id)
            .ok_or_else(|| StoreError::Config(format!("shard {id} is not open")))
    }
}

/// One `SpanStore` over several shards. The map can change while it runs
/// ([`ShardedStore::update`]): the gateway cluster replicates it, and every
/// gateway applies each new epoch. A call in flight keeps the layout it
/// started with.
#[derive(Debug)]
pub struct ShardedStore {
    layout: std::sync::RwLock<Arc<Layout>>,
}

impl ShardedStore {
    /// `shards[i]` is shard `i`.
    pub fn new(map: ShardMap, shards: Vec<Arc<dyn SpanStore>>) -> Result<Self, StoreError> {
        let shards: BTreeMap<ShardId, Arc<dyn SpanStore>> = shards
            .into_iter()
            .enumerate()
            .map(|(i, s)| (ShardId::try_from(i).unwrap_or(ShardId::MAX), s))
            .collect();
        Ok(Self {
            layout: std::sync::RwLock::new(Arc::new(Layout::new(map, shards)?)),
        })
    }

    fn layout(&self) -> Arc<Layout> {
        match self.layout.read() {
            Ok(l) => Arc::clone(&l),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The map in force.
    pub fn map(&self) -> ShardMap {
        self.layout().map.clone()
    }

    /// The open shards: per-shard background work (retention) runs on one
    /// of them at a time.
    pub fn shards(&self) -> Vec<(ShardId, Arc<dyn SpanStore>)> {
        self.layout()
            .shards
            .iter()
            .map(|(id, s)| (*id, Arc::clone(s)))
            .collect()
    }

    /// Whether shard `id` is open.
    pub fn has_shard(&self, id: ShardId) -> bool {
        self.layout().shards.contains_key(&id)
    }

    /// Switches to `map`, adding `new_shards` to the open ones. Refused
    /// (nothing changes) when the map names a shard that is not open, or
    /// when it would reroute spans already written: every epoch of the map
    /// in force must still be in the new one, unchanged.
    pub fn update(
        &self,
        map: ShardMap,
        new_shards: Vec<(ShardId, Arc<dyn SpanStore>)>,
    ) -> Result<(), StoreError> {
        let current = self.layout();
        let kept = current.map.epochs();
        if map.epochs().get(..kept.len()) != Some(kept) {
            return Err(StoreError::Config(
                "a new shard map must keep every epoch of the one in force".into(),
            ));
        }
        let mut shards = current.shards.clone();
        shards.extend(new_shards);
        let next = Arc::new(Layout::new(map, shards)?);
        match self.layout.write() {
            Ok(mut l) => *l = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }
}

#[async_trait]
impl SpanStore for ShardedStore {
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
        let l = self.layout();
        // The common case (one shard, or a batch of one shard's traces)
        // needs no copy of the spans.
        if let Some(first) = spans.first() {
            let shard = l.map.route(first.trace_id, first.start_unix_nano);
            if spans
                .iter()
                .all(|s| l.map.route(s.trace_id, s.start_unix_nano) == shard)
            {
                return l.shard(shard)?.write(spans).await.map_err(|e| match e {
                    StoreError::Unavailable(m) => {
                        StoreError::Unavailable(format!("shard {shard}: {m}"))
                    }
                    other => other,
                });
            }
        }
        let mut groups: BTreeMap<ShardId, Vec<Span>> = BTreeMap::new();
        for span in spans {
            groups
                .entry(l.map.route(span.trace_id, span.start_unix_nano))
                .or_default()
                .push(span.clone());
        }
        let l = &l;
        let writes = groups.iter().map(|(id, part)| async move {
            let result = match l.shard(*id) {
                Ok(store) => store.write(part).await,
                Err(e) => Err(e),
            };
            (*id, result)
        });
        let mut total = WriteOutcome::default();
        let mut failed: Option<StoreError> = None;
        for (id, result) in join_all(writes).await {
            match result {
                Ok(o) => {
                    total.inserted += o.inserted;
                    total.duplicates += o.duplicates;
                }
                Err(e) => {
                    tracing::warn!(shard = id, error = %e, "shard write failed");
                    // The batch is retried whole; what the healthy shards
                    // stored is then counted as duplicates.
                    if failed.is_none() || matches!(e, StoreError::Unavailable(_)) {
                        failed = Some(match e {
                            StoreError::Unavailable(m) => {
                                StoreError::Unavailable(format!("shard {id}: {m}"))
                            }
                            other => other,
                        });
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        let l = self.layout();
        let owners = l.map.owners(trace_id);
        let l = &l;
        let reads = owners.iter().map(|id| async move {
            match l.shard(*id) {
                Ok(s) => s.get_trace(trace_id).await,
                Err(e) => Err(e),
            }
        });
        let mut found: Option<Trace> = None;
        for result in join_all(reads).await {
            if let Some(part) = result? {
                match &mut found {
                    Some(t) => merge_into(t, part),
                    None => found = Some(part),
                }
            }
        }
        Ok(found)
    }

    async fn get_trace_capped(
        &self,
        trace_id: TraceId,
        cap: usize,
    ) -> Result<Option<CappedTrace>, StoreError> {
        let l = self.layout();
        let owners = l.map.owners(trace_id);
        let l = &l;
        let reads = owners.iter().map(|id| async move {
            match l.shard(*id) {
                Ok(s) => s.get_trace_capped(trace_id, cap).await,
                Err(e) => Err(e),
            }
        });
        // Linear merge: a capped trace may hold `cap` spans per owner.
        let mut spans = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let (mut any, mut truncated) = (false, false);
        for result in join_all(reads).await {
            if let Some(part) = result? {
                any = true;
                truncated |= part.truncated;
                spans.extend(
                    part.trace
                        .spans
                        .into_iter()
                        .filter(|s| seen.insert(s.span_id)),
                );
            }
        }
        if !any {
            return Ok(None);
        }
        spans.sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
        let mut c = CappedTrace::cap(Trace { trace_id, spans }, cap);
        c.truncated |= truncated;
        Ok(Some(c))
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        let result = self.search(query).await?;
        if result.warnings.is_empty() {
            Ok(result.traces)
        } else {
            Err(StoreError::Unavailable(result.warnings.join("; ")))
        }
    }

    async fn search(&self, query: &TraceQuery) -> Result<SearchResult, StoreError> {
        let l = self.layout();
        let searches = l
            .shards
            .iter()
            .map(|(id, s)| async move { (*id, s.search(query).await) });
        let mut parts = Vec::with_capacity(l.shards.len());
        let mut warnings = Vec::new();
        let mut failures = 0;
        for (id, result) in join_all(searches).await {
            match result {
                Ok(r) => {
                    warnings.extend(r.warnings.into_iter().map(|w| format!("shard {id}: {w}")));
                    parts.push(r.traces);
                }
                Err(e) => {
                    failures += 1;
                    // The warning reaches the client: the error's text
                    // (hosts, driver messages) stays in the log.
                    tracing::warn!(error = %e, shard = %id, "shard failed a search; answering partially");
                    warnings.push(format!("shard {id} did not answer, results are partial"));
                }
            }
        }
        if failures == l.shards.len() {
            return Err(StoreError::Unavailable(warnings.join("; ")));
        }
        Ok(SearchResult {
            traces: merge_search(query, parts),
            warnings,
        })
    }

    async fn services(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        let l = self.layout();
        union(join_all(l.shards.values().map(|s| s.services(scope))).await)
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
        scope: &Scope,
    ) -> Result<Vec<Operation>, StoreError> {
        let l = self.layout();
        union(
            join_all(
                l.shards
                    .values()
                    .map(|s| s.operations(service, span_kind, scope)),
            )
            .await,
        )
    }

    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        let l = self.layout();
        let mut out = Vec::new();
        for (id, result) in join_all(
            l.shards
                .iter()
                .map(|(id, s)| async move { (*id, s.storage_usage().await) }),
        )
        .await
        {
            match result {
                Ok(u) => out.extend(u),
                Err(e) => out.push(ShardUsage {
                    shard: format!("{id}"),
                    total_bytes: 0,
                    spans: 0,
                    clusters: Vec::new(),
                    error: Some(e.to_string()),
                }),
            }
        }
        Ok(out)
    }

    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_unix_nano: u64,
    ) -> Result<RetentionReport, StoreError> {
        let l = self.layout();
        let mut total = RetentionReport::default();
        let mut failed = None;
        for (id, store) in &l.shards {
            match store.enforce_retention(policy, now_unix_nano).await {
                Ok(r) => {
                    total.partitions_dropped += r.partitions_dropped;
                    total.spans_deleted += r.spans_deleted;
                }
                Err(e) => {
                    tracing::warn!(shard = id, error = %e, "retention failed on shard");
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    async fn put_records(&self, records: &[crate::Record]) -> Result<(), StoreError> {
        let l = self.layout();
        let now = unix_nanos();
        let mut groups: BTreeMap<ShardId, Vec<crate::Record>> = BTreeMap::new();
        for r in records {
            // Records of no trace (edges, offsets) live on the first shard.
            let shard = match r.trace {
                Some(trace) => l.map.route(trace, now),
                None => l.shards.keys().next().copied().unwrap_or_default(),
            };
            groups.entry(shard).or_default().push(r.clone());
        }
        for (id, part) in groups {
            l.shard(id)?.put_records(&part).await.map_err(|e| match e {
                StoreError::Unavailable(m) => StoreError::Unavailable(format!("shard {id}: {m}")),
                other => other,
            })?;
        }
        Ok(())
    }

    async fn scan_records(
        &self,
        scan: &crate::RecordScan,
    ) -> Result<Vec<crate::Record>, StoreError> {
        let l = self.layout();
        let ids = match scan.trace {
            Some(t) => l.map.owners(t),
            None => l.shards.keys().copied().collect(),
        };
        let l = &l;
        let reads = ids.iter().map(|id| async move {
            match l.shard(*id) {
                Ok(store) => store.scan_records(scan).await,
                Err(e) => Err(e),
            }
        });
        let mut out = Vec::new();
        for part in join_all(reads).await {
            out.extend(part?);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete_records(
        &self,
        kind: crate::RecordKind,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        let l = self.layout();
        let l = &l;
        let parts = l.shards.values().map(|s| s.delete_records(kind, before_ms));
        let mut n = 0;
        for part in join_all(parts).await {
            n += part?;
        }
        Ok(n)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let l = self.layout();
        // Ready while any shard answers: the others' traces are refused
        // with a retryable status, and search says what is missing.
        let results = join_all(l.shards.values().map(|s| s.ping())).await;
        let mut last = None;
        for r in results {
            match r {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Config("no shards".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_shard() -> Arc<dyn SpanStore> {
        Arc::new(
            crate::sqlite::SqliteStore::open("sqlite::memory:")
                .await
                .expect("in-memory sqlite"),
        )
    }

    #[tokio::test]
    async fn a_running_store_takes_a_new_epoch_and_keeps_old_traces() {
        use crate::testsuite::SpanBuilder;
        let store = ShardedStore::new(
            ShardMap::single_epoch(2).expect("map"),
            vec![sqlite_shard().await, sqlite_shard().await],
        )
        .expect("store");
        let t0 = crate::testsuite::T0;
        let before: Vec<Span> = (1..=200u64)
            .map(|t| SpanBuilder::new(t, 1, "svc").build())
            .collect();
        store.write(&before).await.expect("write before");

        // A map naming a shard that is not open, or dropping the epoch in
        // force, is refused and changes nothing.
        let three = store
            .map()
            .with_epoch(t0 + 1_000, vec![0, 1, 2])
            .expect("epoch");
        assert!(store.update(three.clone(), Vec::new()).is_err());
        let rewritten = ShardMap::single_epoch(3).expect("map");
        assert!(
            store
                .update(rewritten, vec![(2, sqlite_shard().await)])
                .is_err()
        );
        assert_eq!(store.map().epochs().len(), 1);

        let new_shard = sqlite_shard().await;
        store
            .update(three, vec![(2, Arc::clone(&new_shard))])
            .expect("new epoch");
        let after: Vec<Span> = (1_001..=1_200u64)
            .map(|t| SpanBuilder::new(t, 1, "svc").at_unix(t0 + 2_000, 5).build())
            .collect();
        store.write(&after).await.expect("write after");
        // New traces reach the new shard; every trace is found by id.
        let on_new = new_shard
            .find_traces(&crate::testsuite::any_query())
            .await
            .expect("new shard");
        assert!(!on_new.is_empty(), "the new shard took new traces");
        for span in before.iter().chain(&after) {
            let found = store.get_trace(span.trace_id).await.expect("read");
            assert!(found.is_some_and(|t| t.spans.len() == 1));
        }
    }
}
