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
//!
//! - `model::shard` (re-exported here): the pure [`ShardMap`] (epochs, jump
//!   hash; no I/O), shared with the replicated control state;
//! - `merge`: combining the answers of several shards;
//! - `sharded`: [`ShardedStore`], the `SpanStore` that routes writes by
//!   the map and fans reads out.

mod merge;
mod sharded;

pub use merge::merge_search;
pub use model::shard::{Epoch, ShardId, ShardMap, ShardMapError};
pub use sharded::ShardedStore;
