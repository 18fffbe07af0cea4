//! The gateway cluster's replicated control state (DESIGN.md §4), pure.
//!
//! - [`state`]: what is replicated (members, the shard map with epochs,
//!   shard leases, registered clusters, sampling policies, alert rules and
//!   their status, retention, API tokens by digest, `--auth proxy` group mappings), the [`Command`]s that change it, and
//!   [`ControlState::apply`], the one transition function;
//! - [`alert`]: the alert rule grammar and the per-rule status machine.
//!
//! Must not know: I/O, clocks, randomness, async runtimes, openraft or
//! the network. Every node applying the same log reaches the same state
//! (CI checks that no file here names an async runtime, the filesystem,
//! the network or a clock).
//! The control plane (openraft, the admin API) and every gateway concern
//! that reads the state depend on this crate; it depends only on `model`
//! (the shard map with its epochs is `model::shard`).

pub mod alert;
pub mod state;

pub use state::{
    AlertRule, Applied, Command, ControlState, Lease, MAX_NOTIFICATIONS, MAX_REVOKED_SERIALS,
    Member, NodeId, Notification, RegisteredCluster, Shard,
    groups::GroupMapping,
    normalize_serial,
    tokens::{ApiToken, Role},
};
