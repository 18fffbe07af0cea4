//! The gateway cluster's control plane (the gateway-cluster issue).
//!
//! [`state`] is the replicated state and its pure `apply`; the openraft
//! type config, log store, network and admin API build on it. Spans never
//! go through here (DESIGN.md §1): only members, the shard map, shard
//! leases, clusters, sampling policies, alert rules and retention.

pub mod state;
