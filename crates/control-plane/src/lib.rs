//! The gateway cluster's control plane (DESIGN.md §4).
//!
//! - [`raft`]: openraft over on-disk storage ([`raft::log_store`],
//!   [`raft::state_machine`]) and mTLS gRPC ([`raft::network`]);
//!   [`raft::node::ControlPlane`] is one gateway's seat: writes that find
//!   the leader, linearizable reads, membership, shard leases, the peer bus;
//! - [`peer`]: the framing and handlers of non-Raft messages between
//!   gateways (stitching notes, tail digests and verdicts);
//! - [`bootstrap`]: opening the node, serving the Raft port, finding the
//!   cluster;
//! - [`access`]: who calls the `--http` port (the `--admin-token`, API
//!   tokens looked up by digest in the applied state) and the layer that
//!   puts the caller's principal and scope on every API request;
//! - [`admin`]: the admin HTTP API (`/api/v1/admin/…`);
//! - [`ports`]: the traits the other gateway crates take instead of the
//!   concrete `ControlPlane` (state feed, leadership, placement,
//!   proposals, peer bus).
//!
//! The replicated types and their pure `apply` are in `control-state`.
//! Must not know: spans, ingest, stitching, queries, metrics or alerts
//! (they depend on this crate through [`ports`], never the reverse). Spans
//! never go through Raft.

pub mod access;
pub mod admin;
pub mod audit;
pub mod bootstrap;
pub mod peer;
pub mod ports;
pub mod raft;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use bootstrap::{Bootstrap, BootstrapError, ClusterConfig};
pub use ports::{ControlReader, PeerBus, Placement, Plane, Proposer};
pub use raft::node::{ControlPlane, PlaneConfig};
