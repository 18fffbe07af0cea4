//! The shard map: which shard owns a trace, by trace id under epochs.
//!
//! Routing is a pure function of (trace id, span start, [`ShardMap`]): the
//! epoch in force at the span's start picks the shard list, and a jump
//! consistent hash of the trace id picks the shard in it. No I/O: the map
//! is data the gateway cluster replicates, and every gateway routes alike.

use crate::TraceId;
use serde::{Deserialize, Serialize};

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
}
