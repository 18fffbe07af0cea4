//! Store upkeep this node runs under the control plane: following the
//! replicated shard map ([`shards`]) and retention on the shards it holds
//! leases for ([`retention`]).

pub mod retention;
pub mod shards;
