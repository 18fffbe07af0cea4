//! Raft for the gateway cluster (openraft 0.9).
//!
//! The replicated state and its pure `apply` live in the `control-state`
//! crate; openraft drives it through [`log_store`] and [`state_machine`] (both on disk under
//! `<data-dir>/raft`), over [`network`] (mTLS gRPC between gateways).
//! Spans never go through here (DESIGN.md §1): only members, the shard map,
//! shard leases, clusters, sampling policies, alert rules and retention.

use std::io::Cursor;

pub mod fsio;
pub mod log_store;
pub mod network;
pub mod node;
pub mod state_machine;

pub use control_state::{Applied, Command, ControlState, Member, NodeId};

openraft::declare_raft_types!(
    /// Meridian's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
