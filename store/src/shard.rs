//! Trace-id routing over store shards, and the store that fans out to them.
//!
//! Routing is a pure function of (trace id, span start, [`ShardMap`]): the
//! epoch in force at the span's start picks the shard list, and a jump
//! consistent hash of the trace id picks the shard in it. Today the map has
//! one epoch built from `--store`; the gateway-cluster issue replicates the
//! map and appends epochs when shards are added. New traces then spread
//! over every shard while older traces stay where they are: a lookup
//! without a time hint asks the owner under each epoch ([`ShardMap::owners`]).
//! A trace whose spans straddle an epoch start may be split over two
//! shards; reads merge the parts.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use futures::future::join_all;
use model::{RetentionPolicy, Span, SpanKind, Trace, TraceId, TraceQuery};
use serde::{Deserialize, Serialize};

use crate::{
    Operation, RetentionReport, SearchResult, ShardUsage, SpanStore, StoreError, WriteOutcome,
};

/// Identifies a shard for its whole life (never reused).
pub type ShardId = u32;

/// From `start_unix_nano` on, traces are spread over `shards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub epoch: u64,
    pub start_unix_nano: u64,
    pub shards: Vec<ShardId>,
}

/// Which shards own which traces over time. Epochs are sorted by start;
/// the first starts at 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    epochs: Vec<Epoch>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardMapError {
    #[error("a shard map needs at least one shard")]
    NoShards,
    #[error("epoch {0} lists no shards")]
    EmptyEpoch(u64),
    #[error("epoch {epoch} starts at {start}, not after the previous epoch")]
    OutOfOrder { epoch: u64, start: u64 },
}

impl From<ShardMapError> for StoreError {
    fn from(e: ShardMapError) -> Self {
        StoreError::Config(e.to_string())
    }
}

impl ShardMap {
    /// One epoch from the beginning of time over shards `0..n`.
    pub fn single_epoch(n: usize) -> Result<Self, ShardMapError> {
        let n = ShardId::try_from(n).map_err(|_| ShardMapError::NoShards)?;
        Self::new(vec![Epoch {
            epoch: 0,
            start_unix_nano: 0,
            shards: (0..n).collect(),
        }])
    }

    pub fn new(epochs: Vec<Epoch>) -> Result<Self, ShardMapError> {
        if epochs.is_empty() {
            return Err(ShardMapError::NoShards);
        }
        for (i, e) in epochs.iter().enumerate() {
            if e.shards.is_empty() {
                return Err(ShardMapError::EmptyEpoch(e.epoch));
            }
            if i > 0 && e.start_unix_nano <= epochs[i - 1].start_unix_nano {
                return Err(ShardMapError::OutOfOrder {
                    epoch: e.epoch,
                    start: e.start_unix_nano,
                });
            }
        }
        Ok(Self { epochs })
    }

    /// A new map whose last epoch spreads traces starting at
    /// `start_unix_nano` over `shards`.
    pub fn with_epoch(
        &self,
        start_unix_nano: u64,
        shards: Vec<ShardId>,
    ) -> Result<Self, ShardMapError> {
        let mut epochs = self.epochs.clone();
        let epoch = epochs.last().map_or(0, |e| e.epoch + 1);
        epochs.push(Epoch {
            epoch,
            start_unix_nano,
            shards,
        });
        Self::new(epochs)
    }

    pub fn epochs(&self) -> &[Epoch] {
        &self.epochs
    }

    /// Every shard named by any epoch, sorted.
    pub fn all_shards(&self) -> Vec<ShardId> {
        let mut all: Vec<ShardId> = self
            .epochs
            .iter()
            .flat_map(|e| e.shards.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The shard a span of `trace_id` starting at `start_unix_nano` goes to.
    pub fn route(&self, trace_id: TraceId, start_unix_nano: u64) -> ShardId {
        let idx = self
            .epochs
            .partition_point(|e| e.start_unix_nano <= start_unix_nano)
            .saturating_sub(1);
        owner(&self.epochs[idx], trace_id)
    }

    /// The shards that may hold spans of `trace_id`: its owner under each
    /// epoch, without duplicates, newest epoch first.
    pub fn owners(&self, trace_id: TraceId) -> Vec<ShardId> {
        let mut out = Vec::with_capacity(self.epochs.len());
        for e in self.epochs.iter().rev() {
            let s = owner(e, trace_id);
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}

fn owner(epoch: &Epoch, trace_id: TraceId) -> ShardId {
    let n = u32::try_from(epoch.shards.len()).unwrap_or(u32::MAX);
    epoch.shards[jump_hash(trace_key(trace_id), n) as usize]
}

/// A well-mixed 64-bit key from the trace id (ids from some SDKs are not
/// random in every byte).
fn trace_key(id: TraceId) -> u64 {
    let b = id.as_bytes();
    let hi = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let lo = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    let mut z = hi.rotate_left(32) ^ lo ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Jump consistent hash (Lamping and Veach): a bucket in `0..buckets`;
/// growing the bucket count moves only 1/n of the keys.
fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    u32::try_from(b.max(0)).unwrap_or(0)
}

/// `part`'s share of `total`, proportional to `weight / weights`.
pub(crate) fn apportion(total: u64, weight: i64, weights: i64) -> u64 {
    if weights <= 0 || weight <= 0 {
        return 0;
    }
    let share = u128::from(total) * weight as u128 / weights as u128;
    u64::try_from(share).unwrap_or(u64::MAX)
}

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

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
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

/// The start of the latest span of `trace` matching `query`.
fn latest_match(trace: &Trace, query: &TraceQuery) -> Option<u64> {
    trace
        .spans
        .iter()
        .filter(|s| query.matches_span(s))
        .map(|s| s.start_unix_nano)
        .max()
}

/// Merges parts of one trace found on several shards.
fn merge_into(into: &mut Trace, part: Trace) {
    for span in part.spans {
        if !into.spans.iter().any(|s| s.span_id == span.span_id) {
            into.spans.push(span);
        }
    }
    into.spans
        .sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
}

/// The sorted union of per-shard lists; shards that failed are left out
/// unless all failed (lists are hints for the UI, partial is better than
/// none).
fn union<T: Ord>(lists: Vec<Result<Vec<T>, StoreError>>) -> Result<Vec<T>, StoreError> {
    let mut out = std::collections::BTreeSet::new();
    let mut last_err = None;
    let mut answered = false;
    for list in lists {
        match list {
            Ok(l) => {
                answered = true;
                out.extend(l);
            }
            Err(e) => last_err = Some(e),
        }
    }
    match (answered, last_err) {
        (false, Some(e)) => Err(e),
        _ => Ok(out.into_iter().collect()),
    }
}

/// Merges per-shard answers: most recent match first, at most `limit`.
pub fn merge_search(query: &TraceQuery, parts: Vec<Vec<Trace>>) -> Vec<Trace> {
    let mut by_id: BTreeMap<TraceId, Trace> = BTreeMap::new();
    for trace in parts.into_iter().flatten() {
        match by_id.get_mut(&trace.trace_id) {
            Some(t) => merge_into(t, trace),
            None => {
                by_id.insert(trace.trace_id, trace);
            }
        }
    }
    let mut ranked: Vec<(u64, Trace)> = by_id
        .into_values()
        .filter_map(|t| latest_match(&t, query).map(|k| (k, t)))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.trace_id.cmp(&b.1.trace_id)));
    ranked.truncate(query.limit);
    ranked.into_iter().map(|(_, t)| t).collect()
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
                    warnings.push(format!(
                        "shard {id} did not answer, results are partial: {e}"
                    ));
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

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        let l = self.layout();
        union(join_all(l.shards.values().map(|s| s.services())).await)
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let l = self.layout();
        union(join_all(l.shards.values().map(|s| s.operations(service, span_kind))).await)
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
        let now = now_nanos();
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

    fn tid(n: u128) -> TraceId {
        TraceId::from_bytes(&n.to_be_bytes()).expect("16 bytes")
    }

    #[test]
    fn routing_is_stable_and_spreads_evenly() {
        let map = ShardMap::single_epoch(4).expect("map");
        let mut counts = [0u32; 4];
        for n in 1..=40_000u128 {
            let s = map.route(tid(n * 7919), 0);
            assert_eq!(
                s,
                map.route(tid(n * 7919), u64::MAX),
                "one epoch: time does not matter"
            );
            counts[s as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn a_new_epoch_takes_new_traces_and_old_ones_stay_findable() {
        let old = ShardMap::single_epoch(2).expect("map");
        let new = old.with_epoch(1_000, vec![0, 1, 2]).expect("epoch");
        let mut moved_to_new_shard = 0;
        for n in 1..=3_000u128 {
            let id = tid(n);
            // Before the epoch start the old owner keeps the trace.
            assert_eq!(new.route(id, 999), old.route(id, 999));
            let after = new.route(id, 1_000);
            if after == 2 {
                moved_to_new_shard += 1;
            }
            let owners = new.owners(id);
            assert!(owners.contains(&old.route(id, 0)));
            assert!(owners.contains(&after));
            assert!(owners.len() <= 2);
        }
        // Jump hash sends about a third of new traces to the new shard.
        assert!(
            (800..1_200).contains(&moved_to_new_shard),
            "{moved_to_new_shard}"
        );
    }

    #[test]
    fn bad_maps_are_refused() {
        assert_eq!(ShardMap::single_epoch(0), Err(ShardMapError::EmptyEpoch(0)));
        let map = ShardMap::single_epoch(1).expect("map");
        assert!(matches!(
            map.with_epoch(0, vec![0]),
            Err(ShardMapError::OutOfOrder { .. })
        ));
        assert!(ShardMap::new(vec![]).is_err());
    }

    #[test]
    fn apportion_splits_by_weight() {
        assert_eq!(apportion(1_000, 1, 4), 250);
        assert_eq!(apportion(1_000, 0, 0), 0);
    }

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
